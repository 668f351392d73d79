package spool

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestCodecRoundTrip(t *testing.T) {
	base := reading("ph-1", telemetry.PH, 7.21, time.Date(2025, 11, 13, 6, 30, 0, 123456789, time.UTC))
	tests := []struct {
		name string
		edit func(r *telemetry.Reading)
	}{
		{"typical", func(*telemetry.Reading) {}},
		{"every flag", func(r *telemetry.Reading) { r.Flags = math.MaxUint16 }},
		{"suspect from api", func(r *telemetry.Reading) {
			r.Quality, r.Source, r.Flags = telemetry.Suspect, telemetry.SourceAPI, telemetry.FlagSpike
		}},
		{"bad manual", func(r *telemetry.Reading) {
			r.Quality, r.Source, r.Value = telemetry.Bad, telemetry.SourceManual, -1e300
		}},
		{"values outside the tables", func(r *telemetry.Reading) {
			r.Param, r.Unit, r.Source, r.Quality = "salinity", "PSU", "buoy", "unknown"
		}},
		{"empty strings", func(r *telemetry.Reading) {
			r.Station, r.Sensor, r.Param, r.Unit, r.Source, r.Quality = "", "", "", "", "", ""
		}},
		{"zero time", func(r *telemetry.Reading) { r.Time = time.Time{} }},
		{"before 1970", func(r *telemetry.Reading) { r.Time = time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC) }},
		{"year 9999", func(r *telemetry.Reading) { r.Time = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) }},
		{"local zone becomes UTC", func(r *telemetry.Reading) {
			r.Time = time.Date(2025, 11, 13, 12, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))
		}},
		{"negative zero and tiny", func(r *telemetry.Reading) { r.Value = math.Copysign(0, -1) }},
		{"subnormal", func(r *telemetry.Reading) { r.Value = math.SmallestNonzeroFloat64 }},
		{"NaN bits", func(r *telemetry.Reading) { r.Value = math.Float64frombits(0x7ff8000000000001) }},
		{"longest strings", func(r *telemetry.Reading) {
			r.Station, r.Sensor = strings.Repeat("s", maxStringLen), strings.Repeat("é", maxStringLen/2)
		}},
		{"lab sample", func(r *telemetry.Reading) {
			r.Source, r.Sample = telemetry.SourceManual, &telemetry.Sample{ID: "PUN-1101-03", Lab: "MPCB Pune", Method: "APHA 5210 B"}
		}},
		{"lab sample with only a lab", func(r *telemetry.Reading) {
			r.Source, r.Sample = telemetry.SourceManual, &telemetry.Sample{Lab: "field kit"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			b, err := encodeReading(nil, &in)
			require.NoError(t, err)
			got, err := decodeReading(42, b)
			require.NoError(t, err)
			want := in
			want.Seq = 42
			want.Time = in.Time.UTC()
			assertSameReading(t, want, got)
			assert.Equal(t, want.Sample, got.Sample)
			if in.Sample == nil {
				assert.Equal(t, byte(codecV1), b[0], "readings without a sample keep the first encoding")
			}
		})
	}
}

func TestCodecSize(t *testing.T) {
	r := reading("ph-1", telemetry.PH, 7.21, time.Date(2025, 11, 13, 6, 30, 0, 0, time.UTC))
	b, err := encodeReading(nil, &r)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(b), 40, "a typical reading should stay compact, got %d bytes", len(b))
}

func TestCodecRejects(t *testing.T) {
	r := reading("ph-1", telemetry.PH, 7, t0)
	good, err := encodeReading(nil, &r)
	require.NoError(t, err)

	encTests := []struct {
		name string
		edit func(r *telemetry.Reading)
	}{
		{"sensor too long", func(r *telemetry.Reading) { r.Sensor = strings.Repeat("x", maxStringLen+1) }},
		{"year 10000", func(r *telemetry.Reading) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"year 0", func(r *telemetry.Reading) { r.Time = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range encTests {
		t.Run("encode "+tt.name, func(t *testing.T) {
			in := r
			tt.edit(&in)
			_, err := encodeReading(nil, &in)
			assert.Error(t, err)
		})
	}

	decTests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"unknown quality code", func() []byte { b := append([]byte{}, good...); b[2] = 200; return b }()},
		{"huge string length", []byte{1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"overlong varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range decTests {
		t.Run("decode "+tt.name, func(t *testing.T) {
			_, err := decodeReading(1, tt.b)
			assert.True(t, errors.Is(err, errCorrupt), "want errCorrupt, got %v", err)
		})
	}
}

func assertSameReading(t *testing.T, want, got telemetry.Reading) {
	t.Helper()
	assert.Equal(t, math.Float64bits(want.Value), math.Float64bits(got.Value), "value bits")
	want.Value, got.Value = 0, 0
	assert.True(t, want.Time.Equal(got.Time), "time: want %v, got %v", want.Time, got.Time)
	assert.Equal(t, time.UTC, got.Time.Location(), "decoded time is UTC")
	want.Time, got.Time = time.Time{}, time.Time{}
	assert.Equal(t, want, got)
}

// FuzzDecodeReading feeds arbitrary bytes to the decoder: it must never panic, and
// whatever it accepts must survive an encode/decode round trip unchanged.
func FuzzDecodeReading(f *testing.F) {
	for _, r := range []telemetry.Reading{
		reading("ph-1", telemetry.PH, 7.21, t0),
		{Station: "S", Sensor: "x", Param: "salinity", Unit: "PSU", Source: "buoy", Quality: "odd",
			Time: time.Date(1969, 1, 1, 0, 0, 0, 1, time.UTC), Value: math.Inf(-1), Flags: 0xffff},
		{},
	} {
		b, err := encodeReading(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80})
	f.Add([]byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReading(7, b)
		_, _, perr := peekReading(b, telemetry.PH)
		if err != nil {
			return
		}
		if perr != nil {
			t.Fatalf("peek rejects what decode accepts: %v", perr)
		}
		enc, err := encodeReading(nil, &r)
		if err != nil {
			t.Fatalf("decoded reading does not encode: %v (%+v)", err, r)
		}
		r2, err := decodeReading(7, enc)
		if err != nil {
			t.Fatalf("re-encoded reading does not decode: %v", err)
		}
		if math.Float64bits(r.Value) != math.Float64bits(r2.Value) || !r.Time.Equal(r2.Time) {
			t.Fatalf("round trip changed value or time: %+v -> %+v", r, r2)
		}
		// A sample is a pointer: the same sample, not the same pointer.
		if (r.Sample == nil) != (r2.Sample == nil) || r.Sample != nil && *r.Sample != *r2.Sample {
			t.Fatalf("round trip changed the sample: %+v -> %+v", r.Sample, r2.Sample)
		}
		r.Value, r2.Value, r.Time, r2.Time, r.Sample, r2.Sample = 0, 0, time.Time{}, time.Time{}, nil, nil
		if r != r2 {
			t.Fatalf("round trip changed the reading: %+v -> %+v", r, r2)
		}
	})
}
