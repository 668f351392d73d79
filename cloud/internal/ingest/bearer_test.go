package ingest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBearer(t *testing.T) {
	tests := []struct {
		header, token string
		ok            bool
	}{
		{"Bearer pht_abc", "pht_abc", true},
		{"bearer   pht_abc  ", "pht_abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"pht_abc", "", false},
		{"Bearer " + strings.Repeat("x", 513), "", false},
	}
	for _, tc := range tests {
		token, ok := bearer(tc.header)
		assert.Equal(t, tc.ok, ok, tc.header)
		assert.Equal(t, tc.token, token, tc.header)
	}
}

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer pht_abc", "bearer x", "Basic y", "", "Bearer  \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := bearer(header)
		if !ok {
			require.Empty(t, token)
			return
		}
		require.NotEmpty(t, token)
		require.LessOrEqual(t, len(token), 512)
		require.Equal(t, strings.TrimSpace(token), token)
	})
}
