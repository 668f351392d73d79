package fusion_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/purehealth/purehealth/cloud/internal/fusion"
)

func TestFuse(t *testing.T) {
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	policy := fusion.Policy{
		Priority: []string{"sensor", "api", "satellite", "model"},
		MaxAge:   map[string]time.Duration{"sensor": 2 * time.Hour, "api": 24 * time.Hour, "satellite": 14 * 24 * time.Hour, "model": 6 * time.Hour},
	}
	c := func(param, source string, ago time.Duration, v float64) fusion.Candidate {
		return fusion.Candidate{Param: param, Source: source, Time: now.Add(-ago), Value: v}
	}
	tests := []struct {
		name string
		in   []fusion.Candidate
		want map[string]string // param -> source
		vals map[string]float64
	}{
		{
			name: "the sensor wins while fresh",
			in:   []fusion.Candidate{c("ph", "api", time.Minute, 7.0), c("ph", "sensor", time.Hour, 7.4), c("ph", "model", 0, 7.9)},
			want: map[string]string{"ph": "sensor"}, vals: map[string]float64{"ph": 7.4},
		},
		{
			name: "a stale sensor gives way to a fresh api value",
			in:   []fusion.Candidate{c("do", "sensor", 3*time.Hour, 6), c("do", "api", 20*time.Hour, 5.5)},
			want: map[string]string{"do": "api"}, vals: map[string]float64{"do": 5.5},
		},
		{
			name: "down the list to the satellite",
			in: []fusion.Candidate{c("turbidity", "sensor", 5*time.Hour, 10), c("turbidity", "api", 48*time.Hour, 20),
				c("turbidity", "satellite", 6*24*time.Hour, 30), c("turbidity", "model", 7*time.Hour, 40)},
			want: map[string]string{"turbidity": "satellite"}, vals: map[string]float64{"turbidity": 30},
		},
		{
			name: "nothing fresh: the parameter is absent",
			in:   []fusion.Candidate{c("bod", "sensor", 3*time.Hour, 3), c("bod", "model", 7*time.Hour, 4)},
			want: map[string]string{},
		},
		{
			name: "an unknown source never counts",
			in:   []fusion.Candidate{c("ph", "manual", 0, 7)},
			want: map[string]string{},
		},
		{
			name: "parameters are fused independently; the newest of one source counts",
			in: []fusion.Candidate{c("ph", "sensor", 30*time.Minute, 7.1), c("ph", "sensor", 10*time.Minute, 7.2),
				c("temp", "api", time.Hour, 25)},
			want: map[string]string{"ph": "sensor", "temp": "api"}, vals: map[string]float64{"ph": 7.2, "temp": 25},
		},
		{
			name: "a value stamped in the future has age zero",
			in:   []fusion.Candidate{c("ph", "sensor", -time.Minute, 7)},
			want: map[string]string{"ph": "sensor"}, vals: map[string]float64{"ph": 7},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fusion.Fuse(policy, now, tc.in)
			sources := map[string]string{}
			for p, v := range got {
				sources[p] = v.Source
				assert.GreaterOrEqual(t, v.Age, time.Duration(0))
				if want, ok := tc.vals[p]; ok {
					assert.Equal(t, want, v.Value, "value of %s", p)
				}
			}
			assert.Equal(t, tc.want, sources)
		})
	}
}
