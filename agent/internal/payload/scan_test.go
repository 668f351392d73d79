package payload

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simPayload is the shape ph-sim and most devices publish.
const simPayload = `{"value":7.21,"unit":"pH","timestamp":"2025-11-13T12:00:00.123Z","sensor":"ph-001"}`

func TestItemScan(t *testing.T) {
	tests := []struct {
		name string
		data string
		ok   bool // the fast path takes it; the fields must then be what encoding/json finds
	}{
		{name: "common shape", data: simPayload, ok: true},
		{name: "whitespace everywhere", data: " {\n\t\"value\" : -0.5e+3 ,\r\"param\":\"ph\" } ", ok: true},
		{name: "empty object", data: `{}`, ok: true},
		{name: "unknown scalar fields are skipped", data: `{"firmware":"1.4.2","battery":3.7,"ok":true,"x":null,"value":1}`, ok: true},
		{name: "null and literals", data: `{"value":null,"unit":false,"sensor":true}`, ok: true},
		{name: "non-ASCII string values", data: `{"value":28.5,"unit":"°C"}`, ok: true},
		{name: "invalid UTF-8 inside a value", data: "{\"value\":1,\"unit\":\"\xff\"}", ok: true},

		{name: "key in another case", data: `{"Value":7}`},
		{name: "unknown key folding to a field", data: `{"SENSOR":"a","value":7}`},
		{name: "non-ASCII key", data: `{"ſensor":"a","value":7}`},
		{name: "escaped key", data: `{"val\u0075e":7}`},
		{name: "escaped value", data: `{"value":7,"sensor":"a\"b"}`},
		{name: "duplicate field", data: `{"value":7,"value":8}`},
		{name: "nested unknown object", data: `{"value":7,"meta":{"a":1}}`},
		{name: "array value", data: `{"value":[7]}`},
		{name: "control character in a string", data: "{\"value\":7,\"unit\":\"p\x01H\"}"},
		{name: "leading zero", data: `{"value":07}`},
		{name: "bare dot", data: `{"value":7.}`},
		{name: "exponent without digits", data: `{"value":7e}`},
		{name: "plus sign", data: `{"value":+7}`},
		{name: "NaN", data: `{"value":NaN}`},
		{name: "truncated literal", data: `{"value":tru}`},
		{name: "literal with a tail", data: `{"value":nullx}`},
		{name: "trailing comma", data: `{"value":7,}`},
		{name: "missing colon", data: `{"value" 7}`},
		{name: "unterminated", data: `{"value":7`},
		{name: "unterminated string", data: `{"unit":"pH`},
		{name: "trailing garbage", data: `{"value":7} x`},
		{name: "two objects", data: `{"value":7}{}`},
		{name: "not an object", data: `7`},
		{name: "empty", data: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got item
			ok := got.scan([]byte(tt.data))
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			var want item
			require.NoError(t, json.Unmarshal([]byte(tt.data), &want))
			assert.Equal(t, want, got)
		})
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{raw: `"pH"`, want: "pH", ok: true},
		{raw: `""`, want: "", ok: true},
		{raw: `"°C"`, want: "°C", ok: true},
		{raw: `"a\"b"`},
		{raw: `"a\nb"`},
		{raw: "\"a\tb\""},
		{raw: "\"\xff\""},
		{raw: `pH`},
		{raw: `"`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := unquote([]byte(tt.raw))
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

// FuzzScanItem checks the fast path against encoding/json: whatever scan accepts must be
// valid JSON that encoding/json decodes into the same fields, and every string value it
// passes on unquotes the same way.
func FuzzScanItem(f *testing.F) {
	f.Add([]byte(simPayload))
	f.Add([]byte(`{"value": 7, "unit": null, "timestamp": 1763015400.5, "extra": [1]}`))
	f.Add([]byte(`{"Value":7,"value":8}`))
	f.Add([]byte(`{"value":-0.0e-0,"sensor":"é","x":false}`))
	f.Add([]byte("{\"unit\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got item
		if !got.scan(data) {
			return
		}
		var want item
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("scan accepted %q, which encoding/json refuses: %v", data, err)
		}
		for i, pair := range [][2][]byte{{got.Param, want.Param}, {got.Value, want.Value},
			{got.Unit, want.Unit}, {got.Timestamp, want.Timestamp}, {got.Sensor, want.Sensor}} {
			if !bytes.Equal(pair[0], pair[1]) || (pair[0] == nil) != (pair[1] == nil) {
				t.Fatalf("field %s of %q: scan %q, encoding/json %q", itemFields[i], data, pair[0], pair[1])
			}
			if kind(pair[0]) != "string" {
				continue
			}
			s, ok := unquote(pair[0])
			var ws string
			if err := json.Unmarshal(pair[0], &ws); err != nil {
				t.Fatalf("string %q: %v", pair[0], err)
			}
			if ok && s != ws {
				t.Fatalf("string %q: unquote %q, encoding/json %q", pair[0], s, ws)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	loc := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		name, leaf, data string
	}{
		{name: "object", leaf: "ph", data: simPayload},
		// A capitalised key leaves the object to encoding/json, as before the fast path.
		{name: "object_fallback", leaf: "ph", data: strings.Replace(simPayload, `"value"`, `"Value"`, 1)},
		{name: "number", leaf: "ph", data: "7.21"},
		{name: "readings_8", leaf: Readings, data: "[" + strings.Repeat(
			`{"param":"ph","value":7.21,"unit":"pH","timestamp":"2025-11-13T12:00:00Z"},`, 7) +
			`{"param":"do","value":6.5,"unit":"mg/L","timestamp":"2025-11-13T12:00:00Z"}]`},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			data := []byte(tt.data)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(tt.leaf, data, loc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
