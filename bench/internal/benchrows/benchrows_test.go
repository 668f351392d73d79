package benchrows

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var end = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func testSet() Set {
	return Set{Stations: []string{"BENCH-1", "BENCH-2"}, PerStation: 20, Spacing: time.Second, End: end, Seed: 7}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Set)
		wantErr string
	}{
		{name: "valid", change: func(*Set) {}},
		{name: "no station", change: func(s *Set) { s.Stations = nil }, wantErr: "no station"},
		{name: "repeated station", change: func(s *Set) { s.Stations = []string{"A", "A"} }, wantErr: "repeated"},
		{name: "no readings", change: func(s *Set) { s.PerStation = 0 }, wantErr: "at least 1"},
		{name: "negative spacing", change: func(s *Set) { s.Spacing = -time.Second }, wantErr: "negative spacing"},
		{name: "no end", change: func(s *Set) { s.End = time.Time{} }, wantErr: "no end time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSet()
			tt.change(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestReadings(t *testing.T) {
	s := testSet()
	assert.Equal(t, 40, s.Len())
	// 20 readings = 3 timestamps (8 + 8 + 4), 2 s apart at most.
	assert.Equal(t, 2*time.Second, s.Span())
	assert.Equal(t, end.Add(-2*time.Second), s.Start())

	first, last := s.Reading(0, 0), s.Reading(0, 19)
	assert.Equal(t, uint64(1), first.Seq)
	assert.Equal(t, uint64(20), last.Seq)
	assert.Equal(t, s.Start(), first.Time)
	assert.Equal(t, end, last.Time, "the newest reading is at End")
	assert.Equal(t, "ph", first.Param)
	assert.Equal(t, "pH", first.Unit)
	assert.Equal(t, "ph-1", first.Sensor)
	assert.Equal(t, s.Reading(1, 5), s.Reading(1, 5), "deterministic")
	assert.NotEqual(t, s.Reading(0, 8).Value, s.Reading(1, 8).Value, "stations differ")

	for st := range s.Stations {
		for i := range s.PerStation {
			r := s.Reading(st, i)
			info, ok := telemetry.Info(telemetry.Param(r.Param))
			require.True(t, ok, "param %q", r.Param)
			assert.True(t, info.Plausible.Contains(r.Value), "%s value %v plausible", r.Param, r.Value)
			b := baseline[telemetry.Param(r.Param)]
			assert.InDelta(t, b.mid, r.Value, b.spread+0.001, "%s value %v near its baseline", r.Param, r.Value)
		}
	}
}

func TestBatch(t *testing.T) {
	s := testSet()
	b := s.Batch(1, 16, 500, "bench")
	require.NoError(t, b.Validate())
	assert.Equal(t, "BENCH-2", b.Station)
	require.Len(t, b.Readings, 4, "clipped to the station's readings")
	assert.Equal(t, uint64(17), b.Readings[0].Seq)
	assert.Equal(t, uint64(20), b.Readings[3].Seq)
	assert.Empty(t, s.Batch(0, 20, 10, "bench").Readings)
}

func TestWriteCSV(t *testing.T) {
	s := testSet()
	var buf bytes.Buffer
	require.NoError(t, s.WriteCSV(&buf))
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, s.Len())

	src := s.CopySource()
	for n, rec := range recs {
		require.Len(t, rec, len(Columns))
		require.True(t, src.Next(), "copy source ended early at row %d", n)
		vals, err := src.Values()
		require.NoError(t, err)
		at, err := time.Parse(time.RFC3339Nano, rec[0])
		require.NoError(t, err)
		v, err := strconv.ParseFloat(rec[3], 64)
		require.NoError(t, err)
		seq, err := strconv.ParseInt(rec[7], 10, 64)
		require.NoError(t, err)
		assert.Equal(t, vals, []any{at, rec[1], rec[2], v, rec[4], rec[5], rec[6], seq, rec[8], []string{}},
			"row %d: the CSV and the copy source hold the same reading", n)
		assert.Equal(t, "{}", rec[9])
	}
	assert.False(t, src.Next(), "the copy source has as many rows as the CSV")
	require.NoError(t, src.Err())

	rows := s.Rows()
	require.Len(t, rows, s.Len())
	src = s.CopySource()
	for _, row := range rows {
		require.True(t, src.Next())
		vals, err := src.Values()
		require.NoError(t, err)
		assert.Equal(t, vals, row, "Rows holds what CopySource makes")
	}
}

func TestPayload(t *testing.T) {
	s := testSet()
	b, err := s.Payload(0, 8, 8)
	require.NoError(t, err)
	var arr []agentReading
	require.NoError(t, json.Unmarshal(b, &arr))
	require.Len(t, arr, 8)
	want := s.Reading(0, 8)
	assert.Equal(t, agentReading{Param: want.Param, Value: want.Value, Unit: want.Unit,
		Timestamp: want.Time.Format(time.RFC3339Nano), Sensor: want.Sensor}, arr[0])
}
