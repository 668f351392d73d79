package payload

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func kolkata(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Kolkata")
	require.NoError(t, err, "the tz database must be available")
	return loc
}

func readCase(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "decode", name))
	require.NoError(t, err)
	return data
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func obs(sensor, param string, v float64, unit string, when time.Time) telemetry.Observation {
	return telemetry.Observation{Sensor: sensor, Param: param, Value: v, Unit: unit, Time: when,
		Source: telemetry.SourceSensor}
}

func TestDecode(t *testing.T) {
	ist := kolkata(t)
	tests := []struct {
		name    string
		leaf    string
		file    string // under testdata/decode, or
		data    string // inline
		loc     *time.Location
		want    []telemetry.Observation
		wantErr []string // one substring per problem (see Split), in order
		is      error    // errors.Is target for the whole error
	}{
		{name: "object with everything and extra fields", leaf: "ph", file: "object_full.json", loc: ist,
			want: []telemetry.Observation{obs("ph-probe-1", "ph", 7.2, "pH", utc("2025-11-13T06:30:00Z"))}},
		{name: "object with only a value", leaf: "do", file: "object_minimal.json",
			want: []telemetry.Observation{obs("do", "do", 6.85, "", time.Time{})}},
		{name: "offset and fractional seconds", leaf: "temperature", file: "object_offset.json", loc: time.UTC,
			want: []telemetry.Observation{obs("temperature", "temperature", 28.5, "°C",
				utc("2025-11-13T06:30:00.25Z"))}},
		{name: "bare number with whitespace", leaf: "turbidity", file: "bare_number.json",
			want: []telemetry.Observation{obs("turbidity", "turbidity", 7.2, "", time.Time{})}},
		{name: "bare negative exponent", leaf: "temp", data: "-1.5e0",
			want: []telemetry.Observation{obs("temp", "temp", -1.5, "", time.Time{})}},
		{name: "local time with a space and no zone means UTC", leaf: "ph", loc: nil,
			data: `{"value": 7, "timestamp": "2025-11-13 12:00:00"}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", utc("2025-11-13T12:00:00Z"))}},
		{name: "local time in the station zone", leaf: "ph", loc: ist,
			data: `{"value": 7, "timestamp": "2025-11-13 12:00:00.5"}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", utc("2025-11-13T06:30:00.5Z"))}},
		{name: "offset without colon", leaf: "ph", loc: ist,
			data: `{"value": 7, "timestamp": "2025-11-13T12:00:00+0530"}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", utc("2025-11-13T06:30:00Z"))}},
		{name: "unix seconds with fraction", leaf: "ph", data: `{"value": 7, "timestamp": 1763015400.5}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", utc("2025-11-13T06:30:00.5Z"))}},
		{name: "unix milliseconds", leaf: "ph", data: `{"value": 7, "timestamp": 1763015400123}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", utc("2025-11-13T06:30:00.123Z"))}},
		{name: "null optional fields", leaf: "ph",
			data: `{"value": 7, "unit": null, "timestamp": null, "sensor": null, "param": null}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "", time.Time{})}},
		{name: "param alias agreeing with the topic", leaf: "do", data: `{"param": "Dissolved Oxygen", "value": 5}`,
			want: []telemetry.Observation{obs("do", "do", 5, "", time.Time{})}},
		{name: "field names match case-insensitively", leaf: "ph", data: `{"Value": 7, "Unit": "pH"}`,
			want: []telemetry.Observation{obs("ph", "ph", 7, "pH", time.Time{})}},
		{name: "readings array", leaf: Readings, file: "readings_ok.json",
			want: []telemetry.Observation{
				obs("sonde-1", "ph", 7.1, "pH", utc("2025-11-13T06:30:00Z")),
				obs("DO", "DO", 6.4, "mg/L", utc("2025-11-13T06:30:00Z")),
				obs("temperature", "temperature", 24, "degC", utc("2025-11-13T06:30:00.123Z")),
			}},
		{name: "readings partly bad keeps the good ones", leaf: Readings, file: "readings_partial.json",
			want: []telemetry.Observation{
				obs("ph", "ph", 7.1, "", time.Time{}),
				obs("bod", "bod", 2.5, "mg/L", time.Time{}),
			},
			wantErr: []string{
				"readings[1].value: want a number, got string",
				"readings[2].param: missing",
				"readings[3]: want an object, got number",
				`readings[4].timestamp: cannot parse time "yesterday"`,
			}},
		{name: "readings all bad", leaf: Readings, file: "readings_all_bad.json", is: ErrMissing,
			wantErr: []string{"readings[0].value: missing", "readings[1].param: missing"}},

		{name: "numeric string refused", leaf: "ph", file: "value_string.json", is: ErrType,
			wantErr: []string{"value: want a number, got string"}},
		{name: "overflow is not finite", leaf: "ph", file: "value_overflow.json", is: telemetry.ErrNotFinite,
			wantErr: []string{"value: value is not a finite number"}},
		{name: "bare overflow", leaf: "ph", data: "-1e999", is: telemetry.ErrNotFinite,
			wantErr: []string{"value: value is not a finite number"}},
		{name: "truncated JSON", leaf: "ph", file: "truncated.json", is: ErrSyntax,
			wantErr: []string{"malformed JSON"}},
		{name: "value missing", leaf: "ph", data: `{"unit": "pH"}`, is: ErrMissing,
			wantErr: []string{"value: missing"}},
		{name: "value null", leaf: "ph", data: `{"value": null}`, is: ErrMissing,
			wantErr: []string{"value: missing"}},
		{name: "value boolean", leaf: "ph", data: `{"value": true}`, is: ErrType,
			wantErr: []string{"value: want a number, got boolean"}},
		{name: "unit not a string", leaf: "ph", data: `{"value": 7, "unit": 5}`, is: ErrType,
			wantErr: []string{"unit: want a string, got number"}},
		{name: "sensor too long", leaf: "ph", data: `{"value": 7, "sensor": "` + strings.Repeat("s", 200) + `"}`,
			is: ErrTooLong, wantErr: []string{"sensor: too long: 200 bytes, limit 128"}},
		{name: "param conflicting with topic", leaf: "ph", data: `{"param": "do", "value": 7}`, is: ErrConflict,
			wantErr: []string{`param: "do" conflicts with the topic "ph"`}},
		{name: "bad timestamp", leaf: "ph", data: `{"value": 7, "timestamp": "13/11/2025"}`, is: ErrTime,
			wantErr: []string{`timestamp: cannot parse time "13/11/2025"`}},
		{name: "timestamp wrong type", leaf: "ph", data: `{"value": 7, "timestamp": {}}`, is: ErrType,
			wantErr: []string{"timestamp: want a time string or Unix seconds, got object"}},
		{name: "negative unix time", leaf: "ph", data: `{"value": 7, "timestamp": -5}`, is: ErrTime,
			wantErr: []string{"timestamp: cannot parse time: -5 is before 1970"}},
		{name: "unix time beyond year 9999", leaf: "ph", data: `{"value": 7, "timestamp": 1e300}`, is: ErrTime,
			wantErr: []string{"after year 9999"}},
		{name: "string payload", leaf: "ph", data: `"7.2"`, is: ErrType,
			wantErr: []string{"want an object or a number, got string"}},
		{name: "array on a parameter topic", leaf: "ph", data: `[7.2]`, is: ErrType,
			wantErr: []string{"want an object or a number, got array"}},
		{name: "NaN text", leaf: "ph", data: `NaN`, is: ErrSyntax,
			wantErr: []string{`malformed JSON: want an object or a number, got "NaN"`}},
		{name: "number with trailing garbage", leaf: "ph", data: `7.2 8`, is: ErrSyntax,
			wantErr: []string{`malformed JSON: "7.2 8" is not a JSON number`}},
		{name: "empty", leaf: "ph", data: " \n", is: ErrEmpty, wantErr: []string{"empty payload"}},
		{name: "object on readings topic", leaf: Readings, data: `{"param": "ph", "value": 7}`, is: ErrType,
			wantErr: []string{"want an array of readings, got object"}},
		{name: "empty readings array", leaf: Readings, data: `[]`, is: ErrEmpty,
			wantErr: []string{"no readings in the array"}},
		{name: "too many readings", leaf: Readings,
			data: "[" + strings.Repeat(`{"param":"ph","value":7},`, MaxItems) + `{"param":"ph","value":7}]`,
			is:   ErrTooMany, wantErr: []string{"too many readings: 1001, limit 1000"}},
		{name: "too large", leaf: "ph", data: `{"value": 7, "pad": "` + strings.Repeat("x", MaxSize) + `"}`,
			is: ErrTooLarge, wantErr: []string{"payload too large"}},
		{name: "empty leaf", leaf: "", data: "7", is: ErrMissing, wantErr: []string{"param: missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if tt.file != "" {
				data = readCase(t, tt.file)
			}
			got, err := Decode(tt.leaf, data, tt.loc)
			assert.Equal(t, tt.want, got)
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			problems := Split(err)
			require.Len(t, problems, len(tt.wantErr), "problems: %v", err)
			for i, p := range problems {
				assert.Contains(t, p.Error(), tt.wantErr[i])
			}
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestDecodeFieldErrorLocatesTheItem(t *testing.T) {
	_, err := Decode(Readings, readCase(t, "readings_partial.json"), nil)
	var indexes []int
	for _, p := range Split(err) {
		var fe *FieldError
		require.True(t, errors.As(p, &fe), "want a *FieldError, got %T", p)
		indexes = append(indexes, fe.Index)
	}
	assert.Equal(t, []int{1, 2, 3, 4}, indexes)
}

func TestDecodeDeviceTextIsCut(t *testing.T) {
	long := strings.Repeat("é", 1000)
	_, err := Decode("ph", []byte(`{"value": 7, "timestamp": "`+long+`"}`), nil)
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 400, "the error must not carry the whole device string")
	assert.Contains(t, err.Error(), "(2000 bytes)")
}

func TestAppendDecode(t *testing.T) {
	first := obs("a", "ph", 7, "", time.Time{})
	dst := []telemetry.Observation{first}
	got, err := AppendDecode(dst, "do", []byte(`{"value": 6.5, "unit": "mg/L"}`), nil)
	require.NoError(t, err)
	assert.Equal(t, []telemetry.Observation{first, obs("do", "do", 6.5, "mg/L", time.Time{})}, got)

	got, err = AppendDecode(dst, Readings, []byte(`[{"param":"ph","value":7.1},{"value":1}]`), nil)
	require.Error(t, err)
	assert.Equal(t, []telemetry.Observation{first, obs("ph", "ph", 7.1, "", time.Time{})}, got, "the good item is appended")

	for _, bad := range []struct{ leaf, data string }{{"do", `{"value": "x"}`}, {Readings, `[{"value":1}]`}, {"do", ``}} {
		got, err = AppendDecode(dst, bad.leaf, []byte(bad.data), nil)
		require.Error(t, err, bad.data)
		assert.Equal(t, dst, got, "a payload refused whole leaves dst as it was: %s", bad.data)
	}
}

func FuzzParseTimeString(f *testing.F) {
	for _, s := range []string{"2025-11-13T12:00:00Z", "2025-11-13T12:00:00.123456789+05:30",
		"2025-11-13T12:00:00+0530", "2025-11-13 12:00:00", " 2025-11-13T12:00:00Z", "2025-11-13T24:00:00Z",
		"2025-11-13T12:00:00-00:00", "2025-11-13t12:00:00z", "0000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	loc := time.FixedZone("IST", 5*3600+1800)
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := json.Marshal(s)
		if err != nil {
			return
		}
		got, err := parseTime(raw, loc)
		// The fast path must agree with the layouts wherever it accepts a string.
		want, ok := parseLayouts(strings.TrimSpace(s), loc)
		if ok != (err == nil) {
			t.Fatalf("%q: parseTime error %v, layouts accept: %v", s, err, ok)
		}
		if ok && !got.Equal(want) {
			t.Fatalf("%q: parseTime %v, layouts %v", s, got, want)
		}
		if err == nil && got.Location() != time.UTC {
			t.Fatalf("%q: %v not in UTC", s, got)
		}
	})
}

func TestSplit(t *testing.T) {
	assert.Nil(t, Split(nil))
	one := errors.New("one")
	assert.Equal(t, []error{one}, Split(one))
	two := errors.New("two")
	assert.Equal(t, []error{one, two}, Split(errors.Join(one, two)))
}

func FuzzDecode(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "decode"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("testdata", "decode", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		leaf := "ph"
		if strings.HasPrefix(e.Name(), "readings") {
			leaf = Readings
		}
		f.Add(leaf, data)
	}
	f.Add("do", []byte(`{"value": 1e-400, "timestamp": 1e12}`))
	f.Add("do", []byte(`{"value": 0, "timestamp": "2025-11-13 12:00:00"}`))
	f.Add(Readings, []byte(`[{"param":"x","value":-0,"timestamp":253402300799999}]`))
	loc := time.FixedZone("IST", 5*3600+1800)
	f.Fuzz(func(t *testing.T, leaf string, data []byte) {
		got, err := Decode(leaf, data, loc)
		if err == nil && len(got) == 0 {
			t.Fatalf("no observations and no error for %q", data)
		}
		if leaf != Readings && err != nil && len(got) != 0 {
			t.Fatalf("a refused single payload returned observations: %v", got)
		}
		for _, o := range got {
			if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
				t.Fatalf("non-finite value %v from %q", o.Value, data)
			}
			if o.Param == "" || o.Sensor == "" {
				t.Fatalf("empty param or sensor in %+v from %q", o, data)
			}
			if !o.Time.IsZero() && o.Time.Location() != time.UTC {
				t.Fatalf("time %v not in UTC", o.Time)
			}
		}
		for _, p := range Split(err) {
			if p.Error() == "" {
				t.Fatalf("empty error message for %q", data)
			}
		}
	})
}
