package probepayload

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var at = time.Date(2025, 11, 13, 6, 30, 0, 123e6, time.UTC)

func TestEncodeReading(t *testing.T) {
	assert.Equal(t, `{"value":6.82,"unit":"mg/L","timestamp":"2025-11-13T06:30:00.123Z"}`,
		string(Encode(FormatJSON, 6.82, "mg/L", at)))
	assert.Equal(t, `{"value":1000000000,"unit":"MPN/100mL","timestamp":"2025-11-13T06:30:00.123Z"}`,
		string(Encode(FormatJSON, 1e9, "MPN/100mL", at)), "no exponent")
	assert.Equal(t, "7.21", string(Encode(FormatText, 7.21, "pH", at)))
}

// Every garbage form must fail a strict reader of the contract: JSON with a numeric value
// and a known unit, or a plain number.
func TestEncodeGarbageIsNeverAReading(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatText} {
		for nonce := range uint64(3 * GarbageKinds) {
			t.Run(string(f)+"/"+strconv.FormatUint(nonce, 10), func(t *testing.T) {
				body := EncodeGarbage(f, 6.82, "mg/L", at, nonce)
				require.NotEmpty(t, body)
				if f == FormatText {
					_, err := strconv.ParseFloat(string(body), 64)
					isNaN := string(body) == "NaN"
					assert.True(t, err != nil || isNaN, "text garbage %q must not be a plain number", body)
					return
				}
				var r struct {
					Value *float64 `json:"value"`
					Unit  string   `json:"unit"`
				}
				err := json.Unmarshal(body, &r)
				assert.True(t, err != nil || r.Value == nil || r.Unit == "??", "JSON garbage %q must not be a reading", body)
			})
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatJSON, "json": FormatJSON, "text": FormatText} {
		got, err := ParseFormat(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseFormat("cbor")
	assert.EqualError(t, err, `unknown format "cbor" (want json or text)`)
}
