package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/cloud/internal/storetest"
	"github.com/purehealth/purehealth/internal/testclock"
	"github.com/purehealth/purehealth/shared/wire"
)

func days(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format(time.DateOnly)
	}
	return out
}

func TestPartitionsOnDemandAheadAndExpired(t *testing.T) {
	const dayLen = 24 * time.Hour
	today := time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)
	clk := testclock.New(today.Add(10 * time.Hour))
	s, url := storetest.Open(t, store.Options{Now: clk.Now, AheadDays: 2,
		Retention: store.Retention{Measurements: 30 * dayLen, WQI: 30 * dayLen, Rollups: 60 * dayLen, Alerts: 60 * dayLen}})
	if s.Schema().Mode != store.ModePlain {
		t.Skip("native partitions are the plain PostgreSQL layout; TimescaleDB manages chunks itself")
	}
	storetest.AddStation(t, s, station)

	at := func(dayOffset int, hour int) time.Time {
		return today.Add(time.Duration(dayOffset)*dayLen + time.Duration(hour)*time.Hour)
	}
	reading := func(seq uint64, t time.Time) wire.Reading {
		return wire.Reading{Seq: seq, Time: t, Sensor: "ph-1", Param: "ph", Value: 7, Unit: "pH", Quality: "good", Source: "sensor"}
	}
	b := storetest.Batch(station, []wire.Reading{
		reading(1, at(-5, 1)),  // in the window: its own partition
		reading(2, at(-1, 23)), // same
		reading(3, at(10, 0)),  // beyond ahead: DEFAULT for now
		reading(4, time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)), // a Pi with no clock: DEFAULT
		reading(5, at(-40, 0)), // past retention: DEFAULT
	})
	b.WQI = []wire.WQIPoint{storetest.WQI(1, at(-3, 2), 60)}
	_, err := s.Ingest(t.Context(), station, b)
	require.NoError(t, err)

	parts, err := s.Partitions(t.Context(), "measurements")
	require.NoError(t, err)
	assert.Equal(t, []string{"2025-11-08", "2025-11-12"}, days(parts), "partitions made on demand for in-window days only")
	wparts, err := s.Partitions(t.Context(), "wqi_readings")
	require.NoError(t, err)
	assert.Equal(t, []string{"2025-11-10"}, days(wparts))
	assert.Equal(t, int64(3), count(t, url, `SELECT count(*) FROM measurements_default`))
	assert.Equal(t, int64(5), count(t, url, `SELECT count(*) FROM measurements`), "the parent sees every row")

	rep, err := s.Maintain(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 9, rep.PartitionsCreated, "today and 2 days ahead, for each of the three tables")
	parts, err = s.Partitions(t.Context(), "measurements")
	require.NoError(t, err)
	assert.Equal(t, []string{"2025-11-08", "2025-11-12", "2025-11-13", "2025-11-14", "2025-11-15"}, days(parts))

	rep, err = s.Maintain(t.Context())
	require.NoError(t, err)
	assert.Equal(t, store.MaintenanceReport{}, rep, "a second run changes nothing")

	// Nine days on, the day of seq 3 comes into the window: its partition takes the row
	// over from DEFAULT.
	clk.Advance(9 * dayLen)
	_, err = s.Maintain(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(2), count(t, url, `SELECT count(*) FROM measurements_default`),
		"rows outside the window stay for the retention counted from their arrival")
	assert.Equal(t, int64(1), count(t, url, `SELECT count(*) FROM measurements_p20251123`))
	// A batch can still land on days with and without partitions after that.
	_, err = s.Ingest(t.Context(), station, storetest.Batch(station, []wire.Reading{reading(6, at(11, 5)), reading(3, at(10, 0))}))
	require.NoError(t, err)
	assert.Equal(t, int64(6), count(t, url, `SELECT count(*) FROM measurements`), "seq 3 is not stored twice")

	// Past retention: partitions dropped whole, DEFAULT rows received that long ago deleted.
	clk.Advance(30 * dayLen)
	rep, err = s.Maintain(t.Context())
	require.NoError(t, err)
	assert.Positive(t, rep.PartitionsDropped)
	parts, err = s.Partitions(t.Context(), "measurements")
	require.NoError(t, err)
	require.NotEmpty(t, parts)
	assert.False(t, parts[0].Before(clk.Now().Add(-31*dayLen)), "oldest partition %v is past retention", parts[0])
	assert.Zero(t, count(t, url, `SELECT count(*) FROM measurements_default`), "expired DEFAULT rows deleted")
	assert.Equal(t, int64(2), count(t, url, `SELECT count(*) FROM measurements`), "rows of days 10 and 11 remain")
	rs, err := s.Readings(t.Context(), store.ReadingsQuery{Station: station, Limit: 10})
	require.NoError(t, err)
	assert.Len(t, rs, 2)
}
