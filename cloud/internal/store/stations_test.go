package store_test

import (
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

func ptr[T any](v T) *T { return &v }

func testStationsAndTokens(t *testing.T, l layout) {
	s, url := l.open(t, store.Options{})
	token, err := s.AddStation(t.Context(), store.NewStation{ID: station, Name: "Mula-Mutha at Sangam",
		Class: "c", Lat: ptr(18.5286), Lon: ptr(73.8567)})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(token, "pht_"), "token %q", token)
	assert.Len(t, token, 4+43, "32 random bytes, base64url")

	id, err := s.Authenticate(t.Context(), token)
	require.NoError(t, err)
	assert.Equal(t, station, id)

	for _, bad := range []string{"", "pht_", token + "x", strings.ToUpper(token), token[:len(token)-1]} {
		_, err := s.Authenticate(t.Context(), bad)
		assert.ErrorIs(t, err, store.ErrNotFound, "token %q", bad)
	}

	_, err = s.AddStation(t.Context(), store.NewStation{ID: station, Name: "again"})
	assert.ErrorIs(t, err, store.ErrExists)

	st, err := s.Station(t.Context(), station)
	require.NoError(t, err)
	assert.Equal(t, "C", st.Class, "class stored upper-case")
	assert.Equal(t, 18.5286, *st.Lat)
	assert.Nil(t, st.LastBatchAt)

	t.Run("token is not stored in clear", func(t *testing.T) {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "pht_"))
		require.NoError(t, err)
		needles := []string{token, strings.TrimPrefix(token, "pht_"), hex.EncodeToString(raw)}
		// Every row of every table, as text.
		tableText := func() string {
			var b strings.Builder
			for _, tbl := range tables(t, url) {
				b.WriteString(rowsText(t, url, tbl))
			}
			return b.String()
		}()
		for _, n := range needles {
			assert.NotContains(t, tableText, n)
		}
		pgDump, err := pgtest.Tool("pg_dump")
		if err != nil {
			t.Skipf("no pg_dump: %v", err)
		}
		out, err := exec.Command(pgDump, "--dbname="+url, "--no-owner").CombinedOutput()
		require.NoError(t, err, "pg_dump: %s", out)
		require.Contains(t, string(out), "Mula-Mutha at Sangam", "the dump must contain the station row")
		for _, n := range needles {
			assert.NotContains(t, string(out), n, "the dump must not contain the token")
		}
	})

	t.Run("rotate invalidates the old token at once", func(t *testing.T) {
		fresh, err := s.RotateToken(t.Context(), station)
		require.NoError(t, err)
		assert.NotEqual(t, token, fresh)
		_, err = s.Authenticate(t.Context(), token)
		assert.ErrorIs(t, err, store.ErrNotFound)
		id, err := s.Authenticate(t.Context(), fresh)
		require.NoError(t, err)
		assert.Equal(t, station, id)
		_, err = s.RotateToken(t.Context(), "MH-NONE-000")
		assert.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("invalid stations", func(t *testing.T) {
		for _, n := range []store.NewStation{
			{ID: "bad id", Name: "x"}, {ID: "", Name: "x"}, {ID: "A'; DROP TABLE stations;--", Name: "x"},
			{ID: "OK-1", Name: ""}, {ID: "OK-1", Name: "x", Class: "F"}, {ID: "OK-1", Name: "x", Lat: ptr(91.0), Lon: ptr(0.0)},
			{ID: "OK-1", Name: "x", Lat: ptr(10.0)},
		} {
			_, err := s.AddStation(t.Context(), n)
			assert.ErrorIs(t, err, store.ErrInvalid, "%+v", n)
		}
	})

	t.Run("list pages by id", func(t *testing.T) {
		for _, id := range []string{"MH-A", "MH-B", "MH-C"} {
			storetest.AddStation(t, s, id)
		}
		page, err := s.Stations(t.Context(), "", 2)
		require.NoError(t, err)
		require.Len(t, page, 2)
		assert.Equal(t, []string{"MH-A", "MH-B"}, []string{page[0].ID, page[1].ID})
		page, err = s.Stations(t.Context(), "MH-B", 10)
		require.NoError(t, err)
		require.Len(t, page, 2)
		assert.Equal(t, []string{"MH-C", station}, []string{page[0].ID, page[1].ID})
	})
}

// rowsText returns every row of a table as text.
func rowsText(t *testing.T, url, table string) string {
	t.Helper()
	var b strings.Builder
	conn := connect(t, url)
	rows, err := conn.Query(t.Context(), `SELECT t::text FROM `+quoteIdent(table)+` t`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		b.WriteString(s)
		b.WriteByte('\n')
	}
	require.NoError(t, rows.Err())
	return b.String()
}

func TestUnknownStations(t *testing.T) {
	s, _ := storetest.Open(t, store.Options{})
	storetest.AddStation(t, s, "MH-PUNE-001")
	storetest.AddStation(t, s, "MH-NASHIK-001")
	got, err := s.UnknownStations(t.Context(), []string{"X-2", "MH-PUNE-001", "X-1", "MH-NASHIK-001", "x\x00"})
	require.NoError(t, err)
	assert.Equal(t, []string{"X-2", "X-1", "x\x00"}, got, "in the order given")
	got, err = s.UnknownStations(t.Context(), nil)
	require.NoError(t, err)
	assert.Empty(t, got)
}

// A removed station's token stops working at once and it leaves the listing; its data
// stays unless purged, and a purge leaves no row of it in any table.
func TestRemoveStation(t *testing.T) {
	s, url := storetest.Open(t, store.Options{})
	keep := storetest.AddStation(t, s, "MH-KEEP-001")
	purge := storetest.AddStation(t, s, "MH-GONE-001")
	t0 := time.Now().Add(-time.Hour)
	for _, id := range []string{"MH-KEEP-001", "MH-GONE-001"} {
		b := storetest.Batch(id, storetest.Readings(1, 5, t0, time.Minute))
		b.Alerts = []wire.AlertEvent{storetest.Alert(1, 1, "opened", "active", t0)}
		_, err := s.Ingest(t.Context(), id, b)
		require.NoError(t, err)
	}

	require.NoError(t, s.RemoveStation(t.Context(), "MH-KEEP-001", false))
	_, err := s.Authenticate(t.Context(), keep)
	assert.ErrorIs(t, err, store.ErrNotFound, "the token stops working at once")
	list, err := s.Stations(t.Context(), "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "MH-GONE-001", list[0].ID)
	rs, err := s.Readings(t.Context(), store.ReadingsQuery{Station: "MH-KEEP-001", Limit: 10})
	require.NoError(t, err)
	assert.Len(t, rs, 5, "its data is kept")

	require.NoError(t, s.RemoveStation(t.Context(), "MH-GONE-001", true))
	_, err = s.Authenticate(t.Context(), purge)
	assert.ErrorIs(t, err, store.ErrNotFound)
	for _, table := range []string{"measurements", "alerts", "alert_events", "events", "station_latest",
		"station_ingest", "measurements_hourly", "notify_outbox"} {
		assert.Zero(t, count(t, url, `SELECT count(*) FROM `+table+` WHERE station_id = 'MH-GONE-001'`), table)
	}
	assert.Positive(t, count(t, url, `SELECT count(*) FROM measurements WHERE station_id = 'MH-KEEP-001'`))
	_, err = s.AddStation(t.Context(), store.NewStation{ID: "MH-GONE-001", Name: "again", Class: "B"})
	assert.NoError(t, err, "a purged id can be registered again")
	assert.ErrorIs(t, s.RemoveStation(t.Context(), "MH-NONE-001", false), store.ErrNotFound)
}
