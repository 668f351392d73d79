package payload

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic         string
		station, leaf string
		wantErr       string
	}{
		{topic: "purehealth/MH-PUNE-001/ph", station: "MH-PUNE-001", leaf: "ph"},
		{topic: "purehealth/st_2/readings", station: "st_2", leaf: "readings"},
		{topic: "purehealth/a/Dissolved Oxygen", station: "a", leaf: "Dissolved Oxygen"},
		{topic: "purehealth/a/°C", station: "a", leaf: "°C"},
		{topic: "purehealth/" + strings.Repeat("s", 64) + "/ph", station: strings.Repeat("s", 64), leaf: "ph"},

		{topic: "", wantErr: `invalid topic "": want purehealth/<station>/<param>`},
		{topic: "other/a/ph", wantErr: `invalid topic "other/a/ph": want purehealth/<station>/<param>`},
		{topic: "PureHealth/a/ph", wantErr: "want purehealth/<station>/<param>"},
		{topic: "purehealth/a", wantErr: "got 2 levels"},
		{topic: "purehealth/a/ph/x", wantErr: "got 4 levels"},
		{topic: "purehealth/a/b/c/d", wantErr: "got 5 levels"},
		{topic: "purehealth//ph", wantErr: "empty station id"},
		{topic: "purehealth/a/", wantErr: "empty parameter level"},
		{topic: "purehealth/MH PUNE/ph", wantErr: `station id "MH PUNE": must be 1–64 letters, digits, '-' or '_'`},
		{topic: "purehealth/+/ph", wantErr: `station id "+": must be`},
		{topic: "purehealth/" + strings.Repeat("s", 65) + "/ph", wantErr: "station id is 65 bytes, limit 64"},
		{topic: "purehealth/a/#", wantErr: `parameter level "#": character '#' not allowed`},
		{topic: "purehealth/a/p\x00h", wantErr: `character '\x00' not allowed`},
		{topic: "purehealth/a/" + strings.Repeat("p", 65), wantErr: "parameter level is 65 bytes, limit 64"},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			station, leaf, err := ParseTopic(tt.topic)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrTopic)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.station, station)
			assert.Equal(t, tt.leaf, leaf)
			assert.Equal(t, tt.topic, Topic(station, leaf))
		})
	}
}

func TestValidateStation(t *testing.T) {
	for _, ok := range []string{"a", "MH-PUNE-001", "x_9"} {
		assert.NoError(t, ValidateStation(ok), ok)
	}
	for _, bad := range []string{"", "a/b", "a+", "#", "é", strings.Repeat("a", 65)} {
		assert.ErrorIs(t, ValidateStation(bad), ErrTopic, bad)
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"purehealth/MH-PUNE-001/ph", "purehealth/a/readings", "purehealth//",
		"purehealth/a/b/c", "purehealth/a/\xff", "purehealth/+/#", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		station, leaf, err := ParseTopic(topic)
		if err != nil {
			if station != "" || leaf != "" {
				t.Fatalf("error %v with results %q %q", err, station, leaf)
			}
			return
		}
		if Topic(station, leaf) != topic {
			t.Fatalf("%q does not round-trip: %q %q", topic, station, leaf)
		}
		if ValidateStation(station) != nil || leaf == "" || strings.ContainsAny(leaf, "/+#") {
			t.Fatalf("accepted %q with station %q leaf %q", topic, station, leaf)
		}
	})
}
