package spool

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/version"
)

// Every released buffer format has a file in testdata/, written once by the code of its
// time and never regenerated: a newer agent must open each of them. When Format changes,
// run `go test ./agent/internal/spool -run TestWriteFormatFixture -write-fixture` once to
// add the new format's file next to the older ones.
var writeFixture = flag.Bool("write-fixture", false,
	"write testdata/agent-format<Format>.db with this code (once per format; never overwritten)")

// The fixture's story. At fixtureT0 four readings, two alert events and a WQI result are
// stored; the first two readings and the first alert are forwarded. Two hours later, with
// a one-hour retention, those three expire, two more readings arrive and a calibration is
// recorded in the key-value state.
var (
	fixtureT0        = time.Date(2025, 6, 1, 6, 0, 0, 0, time.UTC)
	fixtureEnd       = fixtureT0.Add(2 * time.Hour)
	fixtureRetention = time.Hour
	fixtureAlerts    = [][]byte{[]byte(`{"id":"a1","rule":"class_threshold","state":"active"}`),
		[]byte(`{"id":"a1","rule":"class_threshold","state":"resolved"}`)}
	fixtureWQI   = []byte(`{"wqi":83.17,"class":"A"}`)
	fixtureKey   = "calibration/ph-1"
	fixtureValue = []byte(`{"point":"mid","value":7.00}`)
)

// fixtureReadings is the story's readings as the code of format wrote them: from format 2
// on, the lab result carries its sample's provenance.
func fixtureReadings(format int) (first, later []telemetry.Reading) {
	ph := reading("ph-1", telemetry.PH, 7.21, fixtureT0.Add(-time.Minute))
	do := reading("do-1", telemetry.DO, 6.4, fixtureT0.Add(-time.Minute))
	temp := reading("temp-1", telemetry.Temp, 27.5, fixtureT0.Add(-30*time.Second))
	spike := reading("turb-1", telemetry.Turbidity, 950, fixtureT0)
	spike.Quality, spike.Flags = telemetry.Suspect, telemetry.FlagSpike|telemetry.FlagTimeUnsynced
	lab := reading("", telemetry.FC, 2400, fixtureT0.Add(-26*time.Hour))
	lab.Source = telemetry.SourceManual
	if format >= 2 {
		lab.Sample = &telemetry.Sample{ID: "PUN-0531-02", Lab: "MPCB Pune", Method: "APHA 9221 E"}
	}
	cond := reading("cond-1", telemetry.Conductivity, 412, fixtureEnd)
	cond.Unit = "mS/cm-raw" // a unit outside the encoding's table is stored as a string
	return []telemetry.Reading{ph, do, temp, spike}, []telemetry.Reading{lab, cond}
}

func fixturePath(format int) string {
	return filepath.Join("testdata", "agent-format"+strconv.Itoa(format)+".db")
}

// TestWriteFormatFixture writes the current format's file. It runs only with
// -write-fixture and refuses to overwrite: a released format's file is history.
func TestWriteFormatFixture(t *testing.T) {
	if !*writeFixture {
		t.Skip("writes testdata only with -write-fixture")
	}
	path := fixturePath(Format)
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "%s exists: a released format's file is never rewritten", path)

	clk := testclock.New(fixtureT0)
	s, err := Open(Options{Path: path, MaxBytes: MinMaxBytes, Retention: fixtureRetention, Now: clk.Now})
	require.NoError(t, err)
	ctx := t.Context()
	first, later := fixtureReadings(Format)
	_, err = s.AppendReadings(ctx, first)
	require.NoError(t, err)
	for _, a := range fixtureAlerts {
		_, err = s.AppendRecord(ctx, Alerts, a)
		require.NoError(t, err)
	}
	_, err = s.AppendRecord(ctx, WQI, fixtureWQI)
	require.NoError(t, err)
	require.NoError(t, s.Ack(ctx, Readings, 2))
	require.NoError(t, s.Ack(ctx, Alerts, 1))

	clk.Advance(fixtureEnd.Sub(fixtureT0))
	require.NoError(t, s.Expire(ctx))
	_, err = s.AppendReadings(ctx, later)
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, fixtureKey, fixtureValue))
	require.NoError(t, s.Close())
	mustCheck(t, path)
}

// copyFixture copies a testdata file into a fresh directory: the tests never open the
// original, which must stay byte for byte what its format's code wrote.
func copyFixture(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "agent.db")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func TestOpensEveryReleasedFormat(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "agent-format*.db"))
	require.NoError(t, err)
	require.FileExists(t, fixturePath(1), "the first format's file is kept forever")
	require.FileExists(t, fixturePath(Format), "the current format has its file (see -write-fixture)")

	for _, src := range files {
		t.Run(filepath.Base(src), func(t *testing.T) {
			written, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(src), "agent-format"), ".db"))
			require.NoError(t, err)
			first, later := fixtureReadings(written)
			want := slices.Concat(first[2:], later)
			for i := range want {
				want[i].Seq, want[i].Time = uint64(i+3), want[i].Time.UTC()
			}
			path := copyFixture(t, src)
			clk := testclock.New(fixtureEnd)
			s := openSpool(t, Options{Path: path, MaxBytes: MinMaxBytes, Retention: fixtureRetention, Now: clk.Now})
			assert.Empty(t, s.Quarantined(), "an older format is not a corrupt file")

			assert.Equal(t, want, allReadings(t, s), "readings 3-6 in seq order, unchanged")
			st := s.Stats()
			assert.Equal(t, map[Stream]uint64{Readings: 2, Alerts: 1, WQI: 0}, st.Cursor)
			assert.Equal(t, map[Stream]uint64{Readings: 6, Alerts: 2, WQI: 1}, st.LastSeq)
			assert.Equal(t, map[Stream]int{Readings: 4, Alerts: 1, WQI: 1}, st.Unforwarded)
			assert.Equal(t, uint64(3), st.Evicted.ExpiredForwarded, "the eviction counters carry over")
			assert.Equal(t, first[2].Time.UTC(), st.OldestUnforwarded.UTC(), "the first unsent reading's time")

			alerts, err := s.RecordsAfter(Alerts, 0, 10)
			require.NoError(t, err)
			assert.Equal(t, []Record{{Seq: 2, Data: fixtureAlerts[1]}}, alerts)
			wqi, err := s.RecordsAfter(WQI, 0, 10)
			require.NoError(t, err)
			assert.Equal(t, []Record{{Seq: 1, Data: fixtureWQI}}, wqi)
			v, err := s.Get(fixtureKey)
			require.NoError(t, err)
			assert.Equal(t, fixtureValue, v)

			// The sequence goes on where the old agent left it: nothing is ever reused.
			got, err := s.AppendReadings(t.Context(), []telemetry.Reading{reading("ph-1", telemetry.PH, 7.3, fixtureEnd)})
			require.NoError(t, err)
			assert.Equal(t, uint64(7), got[0].Seq)
			require.NoError(t, s.Ack(t.Context(), Readings, 4))
			assert.Equal(t, uint64(4), s.Cursor(Readings))
			require.NoError(t, s.Close())

			format, by := recordedFormat(t, path)
			assert.Equal(t, Format, format, "the file is now in the current format")
			assert.Equal(t, version.Version, by, "and names the agent that wrote it last")
		})
	}
}

// recordedFormat reads the format and the last writer from the file, read-only.
func recordedFormat(t *testing.T, path string) (int, string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var f int
	var by string
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		by = string(meta.Get(keyWrittenBy))
		var err error
		f, err = decodeFormat(meta.Get(keyFormat))
		return err
	}))
	return f, by
}

// setMeta writes meta keys as a newer agent would have (a nil value deletes the key), with
// the options the spool uses so that opening the file changes nothing else.
func setMeta(t *testing.T, path string, kv map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for k, v := range kv {
			var err error
			if v == nil {
				err = meta.Delete([]byte(k))
			} else {
				err = meta.Put([]byte(k), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())
}

// snapshot is what "no damage" means: every file in the directory, byte for byte.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][32]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// An older agent meets a file a newer one has upgraded: it refuses to start, says what
// to do, and leaves the file exactly as it was, so the newer agent can take it up again.
func TestNewerFormatRefusedUntouched(t *testing.T) {
	tests := []struct {
		name  string
		meta  map[string][]byte
		wants []string
	}{
		{
			name: "next format",
			meta: map[string][]byte{"schema": encodeFormat(Format + 1), "written_by": []byte("v9.1.0")},
			wants: []string{fmt.Sprintf("buffer format %d", Format+1), "written by ph-agent v9.1.0",
				fmt.Sprintf("reads formats up to %d", Format), "run the newer ph-agent", "move the file aside"},
		},
		{
			name:  "a format past 255, without a writer",
			meta:  map[string][]byte{"schema": encodeFormat(300), "written_by": nil},
			wants: []string{"buffer format 300", "written by an unknown version"},
		},
		{
			name:  "unreadable record",
			meta:  map[string][]byte{"schema": {0xff, 0x01}},
			wants: []string{"unreadable buffer format record ff01"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFixture(t, fixturePath(Format))
			setMeta(t, path, tt.meta)
			before := snapshot(t, filepath.Dir(path))

			_, err := Open(Options{Path: path, MaxBytes: MinMaxBytes})
			require.ErrorIs(t, err, ErrSchema)
			assert.Contains(t, err.Error(), path, "the error names the file")
			for _, w := range tt.wants {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, before, snapshot(t, filepath.Dir(path)),
				"no byte of the file changed and nothing was quarantined or created")
		})
	}
}

// The upgrade path itself, with made-up formats beyond today's: steps run in order in the
// opening transaction, and a failing step leaves the file in its old format with its data.
func TestUpgradeStepsRunInOrderAtomically(t *testing.T) {
	target := Format + 2
	stepTo := func(n int, fail bool) migrateFunc {
		return func(tx *bolt.Tx) error {
			kv := tx.Bucket(bucketKV)
			if n > Format+1 && kv.Get([]byte(fmt.Sprintf("upgraded.%d", n-1))) == nil {
				return fmt.Errorf("step to %d ran before step to %d", n, n-1)
			}
			if fail {
				return errors.New("disk says no")
			}
			return kv.Put([]byte(fmt.Sprintf("upgraded.%d", n)), []byte("yes"))
		}
	}
	open := func(t *testing.T, path string) *bolt.DB {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
		require.NoError(t, err)
		return db
	}

	t.Run("both steps", func(t *testing.T) {
		path := copyFixture(t, fixturePath(Format))
		db := open(t, path)
		steps := append(slices.Clone(migrations), stepTo(Format+1, false), stepTo(Format+2, false))
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			from, err := prepareFormat(tx, target, steps)
			assert.Equal(t, Format, from)
			return err
		}))
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			kv := tx.Bucket(bucketKV)
			assert.Equal(t, []byte("yes"), kv.Get([]byte(fmt.Sprintf("upgraded.%d", Format+1))))
			assert.Equal(t, []byte("yes"), kv.Get([]byte(fmt.Sprintf("upgraded.%d", Format+2))))
			assert.Equal(t, fixtureValue, kv.Get([]byte(fixtureKey)), "the data stays")
			return nil
		}))
		require.NoError(t, db.Close())
		f, _ := recordedFormat(t, path)
		assert.Equal(t, target, f)
	})

	t.Run("second step fails", func(t *testing.T) {
		path := copyFixture(t, fixturePath(Format))
		db := open(t, path)
		steps := append(slices.Clone(migrations), stepTo(Format+1, false), stepTo(Format+2, true))
		err := db.Update(func(tx *bolt.Tx) error {
			_, err := prepareFormat(tx, target, steps)
			return err
		})
		require.ErrorContains(t, err, fmt.Sprintf("upgrade buffer format %d to %d: disk says no", Format+1, Format+2))
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			assert.Nil(t, tx.Bucket(bucketKV).Get([]byte(fmt.Sprintf("upgraded.%d", Format+1))),
				"the first step's work is rolled back with the rest")
			return nil
		}))
		require.NoError(t, db.Close())
		f, _ := recordedFormat(t, path)
		assert.Equal(t, Format, f, "still the old format, readable by the old agent")
	})

	t.Run("missing step", func(t *testing.T) {
		db := open(t, copyFixture(t, fixturePath(Format)))
		defer db.Close()
		err := db.Update(func(tx *bolt.Tx) error {
			_, err := prepareFormat(tx, target, migrations)
			return err
		})
		require.ErrorContains(t, err, "migrations")
	})
}
