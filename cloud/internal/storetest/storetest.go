// Package storetest helps tests that need a migrated database and batches to put in it.
// It builds on pgtest: call pgtest.Main from the test binary's TestMain.
package storetest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

// Migrated returns the URL of a fresh database migrated to the current schema (plain
// PostgreSQL layout unless the server preloads TimescaleDB).
func Migrated(t testing.TB) string {
	t.Helper()
	url := pgtest.New(t)
	res, err := store.Migrate(t.Context(), url, store.MigrateOptions{})
	require.NoError(t, err, "migrate")
	if res.Mode == store.ModeTimescale { // a server PH_TEST_DATABASE_URL names may load it
		pausePolicies(t, url)
	}
	return url
}

// EnvTimescaleURL names an existing server that loads TimescaleDB
// (shared_preload_libraries=timescaledb), for the tests of the TimescaleDB layout; its user
// must be allowed to create databases. Without it, those tests start a private server
// when the local PostgreSQL installation has the extension, and skip otherwise.
const EnvTimescaleURL = "PH_TEST_TIMESCALEDB_URL"

// Layout is a storage layout the store's tests run on: NewDB returns a fresh database
// migrated to it, dropped when the test ends.
type Layout struct {
	Mode  store.Mode
	NewDB func(t testing.TB) string
}

// Open returns a Store on a fresh database of the layout, closed when the test ends.
func (l Layout) Open(t testing.TB, opts store.Options) (*store.Store, string) {
	t.Helper()
	url := l.NewDB(t)
	return OpenURL(t, url, opts), url
}

// Plain is the plain PostgreSQL layout, on pgtest's server.
func Plain() Layout {
	return Layout{Mode: store.ModePlain, NewDB: func(t testing.TB) string {
		t.Helper()
		return migrate(t, pgtest.New(t), store.ModePlain)
	}}
}

// Timescale is the TimescaleDB layout: on the server EnvTimescaleURL names, or else on a
// private server started for t (stopped when t ends) that preloads the extension. It
// skips t, saying why, when TimescaleDB cannot be loaded.
func Timescale(t testing.TB) Layout {
	t.Helper()
	admin := os.Getenv(EnvTimescaleURL)
	if admin == "" {
		settings, err := pgtest.TimescaleSettings()
		if err != nil {
			t.Skipf("TimescaleDB cannot be loaded here (%v), and %s names no server that loads it: "+
				"the TimescaleDB layout is not tested", err, EnvTimescaleURL)
		}
		admin = pgtest.Start(t, settings...).URL("postgres")
	}
	return Layout{Mode: store.ModeTimescale, NewDB: func(t testing.TB) string {
		t.Helper()
		return migrate(t, pgtest.NewOn(t, admin), store.ModeTimescale)
	}}
}

// pausePolicies unschedules the database's TimescaleDB policies (retention, compression,
// aggregate refresh). The tests' readings are dated where their cases need them, often
// years back, and the background workers would otherwise drop, compress or materialize
// chunks at moments of their own choosing in the middle of a test: a refresh that moves
// the aggregates' watermark before a test backfills hides the backfilled hours from the
// rollups until the next refresh. Unrefreshed, the real-time aggregates show every row.
func pausePolicies(t testing.TB, url string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err, "connect to pause the policies")
	defer conn.Close(context.WithoutCancel(t.Context()))
	_, err = conn.Exec(t.Context(), `SELECT alter_job(job_id, scheduled => false)
		FROM timescaledb_information.jobs WHERE proc_name LIKE 'policy\_%'`)
	require.NoError(t, err, "pause the TimescaleDB policies")
}

func migrate(t testing.TB, url string, mode store.Mode) string {
	t.Helper()
	opts := store.MigrateOptions{Mode: mode}
	if mode == store.ModeTimescale {
		// TimescaleDB runs its retention jobs in the background as soon as they are added:
		// with the design's 90 days, a test's readings dated further back than that
		// (fixed dates age) vanish at a moment of the job's choosing, in the middle of
		// the test. A century keeps them for the test's duration.
		const century = 36500 * 24 * time.Hour
		opts.Retention = store.Retention{Measurements: century, WQI: century, Alerts: century, Rollups: century,
			Health: century, External: century, Forecasts: century}
	}
	_, err := store.Migrate(t.Context(), url, opts)
	require.NoError(t, err, "migrate to the %s layout", mode)
	if mode == store.ModeTimescale {
		pausePolicies(t, url)
	}
	return url
}

// Open returns a Store on a fresh migrated database, closed when the test ends.
func Open(t testing.TB, opts store.Options) (*store.Store, string) {
	t.Helper()
	url := Migrated(t)
	return OpenURL(t, url, opts), url
}

// OpenURL opens a Store on url, closed when the test ends.
func OpenURL(t testing.TB, url string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url, opts)
	require.NoError(t, err, "open store")
	t.Cleanup(s.Close)
	return s
}

// AddStation registers a station and returns its token.
func AddStation(t testing.TB, s *store.Store, id string) string {
	t.Helper()
	token, err := s.AddStation(t.Context(), store.NewStation{ID: id, Name: "Station " + id, Class: "B"})
	require.NoError(t, err, "add station %s", id)
	return token
}

// Params cycles through these, with a plausible value for each.
var Params = []struct {
	Param, Unit string
	Base        float64
}{
	{"ph", "pH", 7.2}, {"do", "mg/L", 6.5}, {"temp", "degC", 26}, {"turbidity", "NTU", 12},
}

// Readings returns n readings with seqs from, from+1, ...: one every step from start,
// cycling through Params, with values that vary by seq, and every seventh one bad.
func Readings(from uint64, n int, start time.Time, step time.Duration) []wire.Reading {
	out := make([]wire.Reading, n)
	for i := range out {
		seq := from + uint64(i)
		p := Params[int(seq)%len(Params)]
		q := "good"
		if seq%7 == 0 {
			q = "bad"
		}
		out[i] = wire.Reading{
			Seq: seq, Time: start.Add(time.Duration(i) * step).UTC().Truncate(time.Microsecond),
			Sensor: p.Param + "-1", Param: p.Param, Value: p.Base + float64(seq%13)/10,
			Unit: p.Unit, Quality: q, Source: "sensor",
		}
	}
	return out
}

// Batch wraps readings in a batch of station.
func Batch(station string, rs []wire.Reading) *wire.Batch {
	return &wire.Batch{V: wire.Version, Station: station, Agent: "test", SentAt: time.Now().UTC(), Readings: rs}
}

// Alert returns an alert transition.
func Alert(seq, id uint64, transition, state string, at time.Time) wire.AlertEvent {
	v, lim := 4.1, 5.0
	ev := wire.AlertEvent{Seq: seq, Transition: transition, Time: at.UTC().Truncate(time.Microsecond),
		Record: alert.Record{
			ID: id, Rule: "threshold", Key: fmt.Sprintf("threshold/do/%d", id), Param: "do", Sensor: "do-1",
			Severity: alert.Warning, State: alert.State(state), OpenedAt: at.UTC().Truncate(time.Microsecond),
			Message: "DO below 5 mg/L", Value: &v, Limit: &lim,
		}}
	if state == "resolved" {
		r := ev.Time
		ev.ResolvedAt = &r
	}
	return ev
}

// WQI returns a WQI point.
func WQI(seq uint64, at time.Time, value float64) wire.WQIPoint {
	sat := 81.5
	return wire.WQIPoint{
		Seq: seq, Time: at.UTC().Truncate(time.Microsecond), WQI: value, Class: "B", Category: "Good",
		Partial: true, Missing: []string{"fc"},
		SubIndices: map[string]float64{"do": 70.1, "ph": 90.2, "bod": 60}, DOSaturationPct: &sat,
	}
}
