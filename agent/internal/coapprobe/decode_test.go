package coapprobe

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/agent/internal/payload"
	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestDecodePayload(t *testing.T) {
	kolkata := time.FixedZone("IST", 5*3600+30*60)
	tests := []struct {
		name      string
		cf        message.MediaType
		hasFormat bool
		data      string
		value     float64
		unit      string
		time      time.Time
	}{
		{"json object", formatJSON, true, `{"value": 6.8, "unit": "mg/L", "timestamp": "2025-11-13T12:00:00"}`,
			6.8, "mg/L", time.Date(2025, 11, 13, 6, 30, 0, 0, time.UTC)},
		{"json bare number", formatJSON, true, " 6.8\n", 6.8, "", time.Time{}},
		{"json with offset", formatJSON, true, `{"value":7,"timestamp":"2025-11-13T12:00:00Z"}`,
			7, "", time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)},
		{"text", formatText, true, "6.80", 6.8, "", time.Time{}},
		{"text signed exponent", formatText, true, " -1.5e-1 \r\n", -0.15, "", time.Time{}},
		{"text leading point", formatText, true, ".5", 0.5, "", time.Time{}},
		{"sniffed json", 0, false, `{"value":6.8,"unit":"ppm"}`, 6.8, "ppm", time.Time{}},
		{"sniffed text", 0, false, "6.8", 6.8, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := decodePayload(telemetry.DO, tt.cf, tt.hasFormat, []byte(tt.data), kolkata)
			require.NoError(t, err)
			assert.Equal(t, "do", o.Param)
			assert.InDelta(t, tt.value, o.Value, 1e-12)
			assert.Equal(t, tt.unit, o.Unit)
			assert.Equal(t, tt.time, o.Time)
			assert.Equal(t, telemetry.SourceSensor, o.Source)
		})
	}
}

func TestDecodePayloadRefuses(t *testing.T) {
	tests := []struct {
		name      string
		cf        message.MediaType
		hasFormat bool
		data      string
		want      error
		mention   string
	}{
		{"empty", formatJSON, true, "", payload.ErrEmpty, ""},
		{"empty text", formatText, true, "  ", payload.ErrEmpty, ""},
		{"json cut", formatJSON, true, `{"value":6.`, payload.ErrSyntax, ""},
		{"string value", formatJSON, true, `{"value":"6.8"}`, payload.ErrType, "value"},
		{"other param", formatJSON, true, `{"param":"ph","value":7}`, payload.ErrConflict, `"ph"`},
		{"array", formatJSON, true, `[6.8]`, payload.ErrType, "array"},
		{"text NaN", formatText, true, "NaN", errNumber, "NaN"},
		{"text Inf", formatText, true, "Inf", errNumber, "Inf"},
		{"text hex", formatText, true, "0x1p-2", errNumber, "0x1p-2"},
		{"text separators", formatText, true, "1_000", errNumber, ""},
		{"text with unit", formatText, true, "6.8 mg/L", errNumber, "mg/L"},
		{"text two points", formatText, true, "6.8.1", errNumber, ""},
		{"text exponent alone", formatText, true, "1e", errNumber, ""},
		{"text overflow", formatText, true, "1e999", telemetry.ErrNotFinite, "1e999"},
		{"text too long", formatText, true, "1" + string(make([]byte, 80)), errNumber, "bytes of text"},
		{"sniffed garbage", 0, false, "\xff\x00\x13", errNumber, ""},
		{"cbor", message.AppCBOR, true, "\xfb\x40\x1b", errFormat, "60 (application/cbor)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodePayload(telemetry.DO, tt.cf, tt.hasFormat, []byte(tt.data), nil)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.want), "want %v, got %v", tt.want, err)
			assert.Contains(t, err.Error(), tt.mention)
		})
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add(uint16(50), true, []byte(`{"value": 6.8, "unit": "mg/L", "timestamp": "2025-11-13T12:00:00"}`))
	f.Add(uint16(50), true, []byte(`6.8`))
	f.Add(uint16(0), true, []byte(`6.8`))
	f.Add(uint16(0), true, []byte(`-1.5e-3`))
	f.Add(uint16(0), false, []byte(`{"value":1}`))
	f.Add(uint16(0), false, []byte("\xff\xfe"))
	f.Add(uint16(60), true, []byte{0xfb})
	f.Fuzz(func(t *testing.T, cf uint16, hasFormat bool, data []byte) {
		o, err := decodePayload(telemetry.DO, message.MediaType(cf), hasFormat, data, nil)
		if err != nil {
			return
		}
		if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
			t.Fatalf("non-finite value %v from %q", o.Value, data)
		}
		if o.Param != "do" {
			t.Fatalf("param %q from %q", o.Param, data)
		}
		trimmed := bytes.TrimSpace(data)
		sniffedJSON := len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
		if hasFormat && message.MediaType(cf) == formatText || !hasFormat && !sniffedJSON {
			// Text is a decimal number and nothing else.
			if !isDecimal(trimmed) || o.Unit != "" || !o.Time.IsZero() {
				t.Fatalf("text %q decoded to %v %q %v", data, o.Value, o.Unit, o.Time)
			}
		}
	})
}
