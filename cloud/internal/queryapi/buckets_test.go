package queryapi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// encodedBuckets is what json.Encoder makes of a bucketed listing: the answer before
// appendBuckets wrote it.
func encodedBuckets(t *testing.T, rows []store.Rollup, next string) string {
	t.Helper()
	out := struct {
		Readings []bucketJSON `json:"readings"`
		Next     string       `json:"next,omitempty"`
	}{Readings: []bucketJSON{}, Next: next}
	for _, r := range rows {
		info, _ := telemetry.Info(telemetry.Param(r.Param))
		out.Readings = append(out.Readings, bucketJSON{Time: r.Bucket, Param: r.Param, Unit: info.Unit,
			Value: r.Avg, Avg: r.Avg, Min: r.Min, Max: r.Max, Count: r.Count})
	}
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(out))
	return buf.String()
}

func TestAppendBucketsIsWhatGoEncodes(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bucket := func(param string, avg, lo, hi float64, count int64) store.Rollup {
		return store.Rollup{Bucket: at, Param: param, Avg: avg, Min: lo, Max: hi, Count: count}
	}
	cases := []struct {
		name string
		rows []store.Rollup
		next string
	}{
		{name: "empty"},
		{name: "empty with a cursor", next: "eyJrIjoiMWgifQ"},
		{name: "one bucket", rows: []store.Rollup{bucket("ph", 7.2, 7.1, 7.35, 60)}},
		// Units with non-ASCII characters (°C, µS/cm) and one a parameter without a unit.
		{name: "units", rows: []store.Rollup{bucket("temperature", 24.5, 23, 26, 60), bucket("conductivity", 412, 400, 431, 60),
			bucket("not-a-param", 1, 1, 1, 1)}},
		{name: "exponents", rows: []store.Rollup{bucket("turbidity", 1e-7, 9.999999999999999e-7, 1e21, 1),
			bucket("do", 5e-324, -1.5e300, math.MaxFloat64, math.MaxInt64)}},
		{name: "zeros", rows: []store.Rollup{bucket("ph", 0, math.Copysign(0, -1), 0, 0)}},
		{name: "bucket out of UTC", rows: []store.Rollup{{Bucket: at.In(time.FixedZone("IST", 19800)), Param: "ph", Avg: 7, Min: 7, Max: 7, Count: 1}}},
		{name: "sub-second bucket", rows: []store.Rollup{{Bucket: at.Add(120 * time.Millisecond), Param: "ph", Avg: 7, Min: 7, Max: 7, Count: 1}}},
		// The writer keeps the time and each parameter's name and unit from one bucket to the next.
		{name: "one instant in two zones", rows: []store.Rollup{bucket("ph", 7, 7, 7, 1), {Bucket: at.In(time.FixedZone("IST", 19800)),
			Param: "ph", Avg: 7, Min: 7, Max: 7, Count: 1}, bucket("do", 8, 8, 8, 1)}},
		{name: "times and parameters again", rows: []store.Rollup{bucket("ph", 7, 7, 7, 1), bucket("do", 8, 8, 8, 1),
			{Bucket: at.Add(-time.Hour), Param: "ph", Avg: 6, Min: 6, Max: 6, Count: 2}, {Bucket: at.Add(-time.Hour), Param: "do", Avg: 5, Min: 5, Max: 5, Count: 2},
			bucket("ph", 7, 7, 7, 1)}},
		{name: "more parameters than the writer keeps", rows: manyParams(at, maxParamsJSON+6)},
		{name: "page with a cursor", rows: []store.Rollup{bucket("ph", 7, 7, 7, 2), bucket("do", 8, 7.5, 8.5, 2)}, next: "a<b>&c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, encodedBuckets(t, tc.rows, tc.next), string(appendBuckets(nil, tc.rows, tc.next)))
		})
	}
}

// manyParams is n buckets of one time with n parameters, then the same again.
func manyParams(at time.Time, n int) []store.Rollup {
	var rows []store.Rollup
	for range 2 {
		for i := range n {
			rows = append(rows, store.Rollup{Bucket: at, Param: "p" + strconv.Itoa(i), Avg: float64(i), Min: 0, Max: float64(n), Count: int64(i)})
		}
	}
	return rows
}

// Property: for any listing of finite values, appendBuckets writes encoding/json's bytes.
func TestAppendBucketsPropertyAgainstEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	params := append(telemetry.Params(), "unknown", "")
	float := func() float64 {
		for {
			var f float64
			switch rng.IntN(3) {
			case 0:
				f = rng.NormFloat64() * 1e3
			case 1:
				f = math.Float64frombits(rng.Uint64()) // any exponent
			default:
				f = math.Round(rng.Float64()*1e4) / 100
			}
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 500 {
		rows := make([]store.Rollup, rng.IntN(40))
		for i := range rows {
			rows[i] = store.Rollup{Bucket: start.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour)))),
				Param: string(params[rng.IntN(len(params))]), Avg: float(), Min: float(), Max: float(), Count: rng.Int64()}
		}
		var next string
		if rng.IntN(2) == 0 {
			next = cursor{Kind: kindHourly, Time: start, Param: "ph"}.encode()
		}
		want := encodedBuckets(t, rows, next)
		if got := string(appendBuckets(nil, rows, next)); got != want {
			t.Fatalf("rows %+v next %q:\n got %s\nwant %s", rows, next, got, want)
		}
	}
}

func TestBufferStockKeepsWhatFits(t *testing.T) {
	s := newBufferStock(2, 1<<20)
	a, b := s.get(), s.get()
	require.NotSame(t, unsafe.SliceData(a[:1]), unsafe.SliceData(b[:1]), "an empty stock makes new buffers")
	big := make([]byte, 0, 2<<20)
	s.put(append(a, "listing"...))
	s.put(big) // larger than max: dropped
	s.put(b)
	s.put(make([]byte, 0, 10)) // the stock is full: dropped
	got := []*byte{unsafe.SliceData(s.get()[:1]), unsafe.SliceData(s.get()[:1])}
	assert.ElementsMatch(t, []*byte{unsafe.SliceData(a[:1]), unsafe.SliceData(b[:1])}, got, "the two kept buffers come back")
	assert.Zero(t, len(s.get()), "then a new, empty one")
}
