package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChanged(t *testing.T) {
	base := `
station: {id: MH-PUNE-001, class: B}
data_dir: /tmp/ph
mqtt: {listen: "127.0.0.1:1883", allow_anonymous: true}
uplink: {url: "http://127.0.0.1:8080", token: "secret-1"}
probes:
  - {name: ph-1, kind: http, url: "http://127.0.0.1:9/ph", param: ph}
`
	parse := func(edit func(string) string) *Config {
		t.Helper()
		c, err := Parse([]byte(edit(base)))
		require.NoError(t, err)
		return c
	}
	same := func(s string) string { return s }
	tests := []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"nothing", same, nil},
		{"class and a token", func(s string) string {
			return strings.NewReplacer("class: B", "class: A", "secret-1", "secret-2").Replace(s)
		}, []string{"station.class", "uplink.token"}},
		{"a probe's interval", func(s string) string {
			return strings.Replace(s, "param: ph}", "param: ph, interval: 5s}", 1)
		}, []string{"probes"}},
		{"a key written that was a default", func(s string) string {
			return s + "alerts: {clear_count: 3, bad_count: 4, hooks: [{command: [/bin/true]}]}\n"
		}, []string{"alerts.bad_count", "alerts.hooks"}},
		{"a new section", func(s string) string {
			return s + "buffer: {max_bytes: 2MiB}\n"
		}, []string{"buffer.max_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Changed(parse(same), parse(tt.edit))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
