package device

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var probeOrigin = time.Date(2025, 2, 3, 9, 0, 0, 0, time.UTC)

// reads returns n samples, one a second from the origin.
func reads(p *Probe, n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = p.Read(probeOrigin.Add(time.Duration(i) * time.Second))
	}
	return out
}

func TestHealthyProbeTracksTheRiver(t *testing.T) {
	m := New(ForStation("MH-PUNE-001"), 1)
	for _, p := range telemetry.Params() {
		t.Run(string(p), func(t *testing.T) {
			pr := NewProbe(m, p, 0, FaultNone, probeOrigin)
			info, _ := telemetry.Info(p)
			for i, s := range reads(pr, 600) {
				require.True(t, s.OK)
				require.False(t, s.Garbage)
				truth := m.Value(p, probeOrigin.Add(time.Duration(i)*time.Second))
				// Within the calibration bias (4 sigma) plus rounding.
				tol := 0.8*faultScale(p, 1)*truthScale(p, truth) + math.Pow10(-Decimals(p))
				assert.InDelta(t, truth, s.Value, tol, "read %d", i)
				assert.True(t, info.Physical.Contains(s.Value))
				assertRounded(t, p, s.Value)
			}
		})
	}
}

// truthScale turns a relative fault scale into an absolute one for multiplicative params.
func truthScale(p telemetry.Param, v float64) float64 {
	if multiplicative(p) {
		return v
	}
	return 1
}

func assertRounded(t *testing.T, p telemetry.Param, v float64) {
	t.Helper()
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		assert.LessOrEqual(t, len(s)-i-1, Decimals(p), "%s printed as %s", p, s)
	}
}

func TestProbesDifferByIndex(t *testing.T) {
	m := New(ForStation("MH-NASHIK-001"), 1)
	a := NewProbe(m, telemetry.PH, 0, FaultNone, probeOrigin)
	b := NewProbe(m, telemetry.PH, 1, FaultNone, probeOrigin)
	again := NewProbe(m, telemetry.PH, 0, FaultNone, probeOrigin)
	assert.NotEqual(t, a.bias, b.bias, "each probe has its own calibration")
	assert.Equal(t, reads(a, 50), reads(again, 50), "same probe, same readings")
}

func TestFaults(t *testing.T) {
	m := New(ForStation("MH-PUNE-001"), 4)
	const n = 3000
	tests := []struct {
		fault Fault
		param telemetry.Param
		check func(t *testing.T, got, healthy []Sample)
	}{
		{FaultNoise, telemetry.PH, func(t *testing.T, got, healthy []Sample) {
			var sum2 float64
			for i := range got {
				d := got[i].Value - healthy[i].Value
				sum2 += d * d
			}
			sd := math.Sqrt(sum2 / n)
			assert.InDelta(t, 4*0.2, sd, 0.1, "noise standard deviation")
		}},
		{FaultDrift, telemetry.DO, func(t *testing.T, got, healthy []Sample) {
			assert.InDelta(t, healthy[0].Value, got[0].Value, 0.011, "right at the origin")
			hour := 3600
			require.Greater(t, len(got), hour)
			assert.InDelta(t, -0.5, got[hour].Value-healthy[hour].Value, 0.011, "0.5 mg/L low after an hour")
		}},
		{FaultDrift, telemetry.Turbidity, func(t *testing.T, got, healthy []Sample) {
			ratio := got[2*3600].Value / healthy[2*3600].Value
			assert.InDelta(t, 1.2, ratio, 0.02, "20 %% high after two hours")
		}},
		{FaultStuck, telemetry.Temp, func(t *testing.T, got, healthy []Sample) {
			for i, s := range got {
				require.Equal(t, got[0].Value, s.Value, "read %d", i)
			}
			assert.Equal(t, healthy[0].Value, got[0].Value, "stuck at the origin reading")
		}},
		{FaultDropout, telemetry.BOD, func(t *testing.T, got, healthy []Sample) {
			missing, longest, run := 0, 0, 0
			for _, s := range got {
				if !s.OK {
					missing++
					run++
					longest = max(longest, run)
				} else {
					run = 0
				}
			}
			share := float64(missing) / n
			assert.True(t, share > 0.2 && share < 0.4, "dropout share %.3f, want about a third", share)
			assert.GreaterOrEqual(t, longest, 20, "bursts of silence")
		}},
		{FaultGarbage, telemetry.FC, func(t *testing.T, got, healthy []Sample) {
			garbage := 0
			nonces := map[uint64]bool{}
			for i, s := range got {
				require.True(t, s.OK)
				if s.Garbage {
					garbage++
				} else {
					assert.Equal(t, healthy[i].Value, s.Value, "clean readings are untouched")
				}
				nonces[s.Nonce] = true
			}
			share := float64(garbage) / n
			assert.True(t, share > 0.28 && share < 0.39, "garbage share %.3f, want about a third", share)
			assert.Greater(t, len(nonces), n-5, "nonces vary")
		}},
		{FaultSpike, telemetry.PH, func(t *testing.T, got, healthy []Sample) {
			spikes := 0
			for i, s := range got {
				if d := math.Abs(s.Value - healthy[i].Value); d > 0.01 {
					spikes++
					assert.GreaterOrEqual(t, d, 8*0.2-0.011, "a spike is large")
				}
			}
			share := float64(spikes) / n
			assert.True(t, share > 0.03 && share < 0.07, "spike share %.3f, want about 1/20", share)
		}},
		{FaultSpike, telemetry.FC, func(t *testing.T, got, healthy []Sample) {
			for i, s := range got {
				if s.Value != healthy[i].Value {
					r := s.Value / healthy[i].Value
					assert.True(t, r > 3 || r < 1.0/3, "a spike is a jump by a large factor: %v", r)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault)+"/"+string(tt.param), func(t *testing.T) {
			pr := NewProbe(m, tt.param, 2, tt.fault, probeOrigin)
			healthy := NewProbe(m, tt.param, 2, FaultNone, probeOrigin)
			n := n
			if tt.fault == FaultDrift {
				n = 2*3600 + 1
			}
			got := reads(pr, n)
			info, _ := telemetry.Info(tt.param)
			for _, s := range got {
				if s.OK && !s.Garbage {
					require.True(t, info.Physical.Contains(s.Value), "physically possible: %v", s.Value)
					assertRounded(t, tt.param, s.Value)
				}
			}
			assert.Equal(t, got, reads(pr, n), "deterministic")
			tt.check(t, got, reads(healthy, n))
		})
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in      string
		want    Fault
		wantErr string
	}{
		{"", FaultNone, ""},
		{"none", FaultNone, ""},
		{"noise", FaultNoise, ""},
		{"Drift", FaultDrift, ""},
		{"stuck", FaultStuck, ""},
		{"dropout", FaultDropout, ""},
		{"garbage", FaultGarbage, ""},
		{"spike", FaultSpike, ""},
		{"unplug", "", `unknown fault "unplug" (want one of none, noise, drift, stuck, dropout, garbage, spike)`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFault(tt.in)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"", "none", "SPIKE", "garbage ", "\x00", "dropout"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFault(s)
		if err != nil {
			assert.Empty(t, got)
			return
		}
		assert.Contains(t, Faults(), got)
	})
}
