package validate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

var t0 = time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)

func reading(p telemetry.Param, v float64, at time.Time) telemetry.Reading {
	return telemetry.Reading{Station: "S", Sensor: string(p) + "-1", Param: p, Value: v, Time: at}
}

func TestSingleReadingChecks(t *testing.T) {
	tests := []struct {
		name      string
		r         telemetry.Reading
		in        Input
		wantQ     telemetry.Quality
		wantFlags telemetry.Flags
	}{
		{"good", reading(telemetry.PH, 7.4, t0), Input{Received: t0, ClockSynced: true}, telemetry.Good, 0},
		{"physical max is inclusive", reading(telemetry.PH, 14, t0), Input{Received: t0, ClockSynced: true}, telemetry.Suspect, telemetry.FlagImplausible},
		{"beyond physical", reading(telemetry.PH, 14.01, t0), Input{Received: t0, ClockSynced: true}, telemetry.Bad, telemetry.FlagOutOfRange},
		{"negative DO", reading(telemetry.DO, -0.1, t0), Input{Received: t0, ClockSynced: true}, telemetry.Bad, telemetry.FlagOutOfRange},
		{"implausible river temp", reading(telemetry.Temp, 52, t0), Input{Received: t0, ClockSynced: true}, telemetry.Suspect, telemetry.FlagImplausible},
		{"probe error", reading(telemetry.PH, 7, t0), Input{Received: t0, ClockSynced: true, ProbeError: true}, telemetry.Bad, telemetry.FlagProbeError},
		{"NaN", reading(telemetry.PH, math.NaN(), t0), Input{Received: t0, ClockSynced: true}, telemetry.Bad, telemetry.FlagOutOfRange},
		{"future", reading(telemetry.PH, 7, t0.Add(10*time.Minute)), Input{Received: t0, ClockSynced: true}, telemetry.Suspect, telemetry.FlagFuture},
		{"slightly ahead is fine", reading(telemetry.PH, 7, t0.Add(4*time.Minute)), Input{Received: t0, ClockSynced: true}, telemetry.Good, 0},
		{"past", reading(telemetry.PH, 7, t0.Add(-8*24*time.Hour)), Input{Received: t0, ClockSynced: true}, telemetry.Suspect, telemetry.FlagPast},
		{"unsynced clock flags, skips skew checks", reading(telemetry.PH, 7, t0.Add(-9000*time.Hour)), Input{Received: t0}, telemetry.Good, telemetry.FlagTimeUnsynced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			r := tt.r
			c.Check(&r, tt.in)
			assert.Equal(t, tt.wantQ, r.Quality)
			assert.Equal(t, tt.wantFlags, r.Flags, "flags %s", r.Flags)
		})
	}
}

func TestKeepsUnrelatedFlags(t *testing.T) {
	c := New(Config{})
	r := reading(telemetry.PH, 7, t0)
	r.Flags = telemetry.FlagDownsampled | telemetry.FlagSpike
	c.Check(&r, Input{Received: t0, ClockSynced: true})
	assert.Equal(t, telemetry.FlagDownsampled, r.Flags, "stale check flags are recomputed, others kept")
}

func TestSpike(t *testing.T) {
	c := New(Config{})
	in := Input{Received: t0, ClockSynced: true}
	values := []float64{7.40, 7.42, 7.41, 7.39, 7.40, 7.43}
	for _, v := range values {
		r := reading(telemetry.PH, v, t0)
		c.Check(&r, in)
		assert.Equal(t, telemetry.Good, r.Quality, "warm-up value %v", v)
	}
	r := reading(telemetry.PH, 9.8, t0)
	c.Check(&r, in)
	assert.True(t, r.Flags.Has(telemetry.FlagSpike), "jump from 7.4 to 9.8 is a spike")
	assert.Equal(t, telemetry.Suspect, r.Quality)

	r = reading(telemetry.PH, 7.6, t0)
	c.Check(&r, in)
	assert.False(t, r.Flags.Has(telemetry.FlagSpike), "7.6 is within the floor scale of 7.4 (0.05·6=0.3)")

	other := telemetry.Reading{Station: "S", Sensor: "ph-2", Param: telemetry.PH, Value: 9.8, Time: t0}
	c.Check(&other, in)
	assert.False(t, other.Flags.Has(telemetry.FlagSpike), "series are independent per sensor")
}

func TestSpikeNeedsWarmWindow(t *testing.T) {
	c := New(Config{MinWindow: 5})
	in := Input{Received: t0, ClockSynced: true}
	for _, v := range []float64{7, 7, 7, 7, 12} {
		r := reading(telemetry.PH, v, t0)
		c.Check(&r, in)
		assert.False(t, r.Flags.Has(telemetry.FlagSpike), "value %v judged with a cold window", v)
	}
}

func TestStepChangeIsAbsorbed(t *testing.T) {
	c := New(Config{Window: 10})
	in := Input{Received: t0, ClockSynced: true}
	for range 10 {
		r := reading(telemetry.DO, 6, t0)
		c.Check(&r, in)
	}
	spikes := 0
	for range 10 {
		r := reading(telemetry.DO, 2, t0) // a real DO crash persists
		c.Check(&r, in)
		if r.Flags.Has(telemetry.FlagSpike) {
			spikes++
		}
	}
	assert.Equal(t, 5, spikes, "a lasting step is flagged only until it is half the window")
}

func TestFlatline(t *testing.T) {
	c := New(Config{FlatlineCount: 4})
	in := Input{Received: t0, ClockSynced: true}
	var got []bool
	for _, v := range []float64{7.1, 7.1, 7.1, 7.1, 7.1, 7.2, 7.2} {
		r := reading(telemetry.PH, v, t0)
		c.Check(&r, in)
		got = append(got, r.Flags.Has(telemetry.FlagFlatline))
	}
	assert.Equal(t, []bool{false, false, false, true, true, false, false}, got)
}

func TestBadValuesStayOutOfTheWindow(t *testing.T) {
	c := New(Config{FlatlineCount: 3})
	in := Input{Received: t0, ClockSynced: true}
	for _, v := range []float64{7, -1, 7, -1, 7} {
		r := reading(telemetry.PH, v, t0)
		c.Check(&r, in)
	}
	r := reading(telemetry.PH, 7, t0)
	c.Check(&r, in)
	assert.True(t, r.Flags.Has(telemetry.FlagFlatline), "bad readings between equal values do not break a flatline")
	c.Forget("S", "ph-1", telemetry.PH)
	r = reading(telemetry.PH, 7, t0)
	c.Check(&r, in)
	assert.False(t, r.Flags.Has(telemetry.FlagFlatline), "Forget clears the series")
}

// referenceMedianMAD is the definition: sort the values, take the middle, then sort the
// absolute deviations from it and take their middle.
func referenceMedianMAD(xs []float64) (median, mad float64) {
	mid := func(s []float64) float64 {
		s = slices.Clone(s)
		slices.Sort(s)
		n := len(s)
		if n%2 == 1 {
			return s[n/2]
		}
		return (s[n/2-1] + s[n/2]) / 2
	}
	median = mid(xs)
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = math.Abs(x - median)
	}
	return median, mid(dev)
}

func TestMedianMADMatchesTheDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := []struct {
		name string
		next func() float64
	}{
		{"noisy", func() float64 { return 7 + rng.NormFloat64()/10 }},
		{"few distinct values", func() float64 { return float64(rng.IntN(3)) / 10 }},
		{"signed zeros", func() float64 { return []float64{0, math.Copysign(0, -1), 1e-300}[rng.IntN(3)] }},
		{"wide range", func() float64 { return (rng.Float64() - 0.5) * 1e9 }},
		{"outliers", func() float64 {
			if rng.IntN(5) == 0 {
				return 1000 * rng.Float64()
			}
			return 6.5
		}},
	}
	for _, g := range gen {
		t.Run(g.name, func(t *testing.T) {
			for window := 1; window <= 25; window++ {
				s := &series{}
				for range 3 * window {
					s.push(g.next(), window)
					want := slices.Clone(s.window)
					slices.Sort(want)
					require.Equal(t, want, s.sorted, "sorted copy of window %v", s.window)
					wantMed, wantMAD := referenceMedianMAD(s.window)
					gotMed, gotMAD := medianMAD(s.sorted)
					require.Equal(t, math.Float64bits(math.Abs(wantMed)), math.Float64bits(math.Abs(gotMed)),
						"median of %v", s.window)
					require.Equal(t, math.Float64bits(wantMAD), math.Float64bits(gotMAD), "MAD of %v", s.window)
				}
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	c := New(Config{})
	in := Input{Received: t0, ClockSynced: true}
	sensors := make([]string, 64)
	for i := range sensors {
		sensors[i] = "ph-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := telemetry.Reading{Station: "S", Sensor: sensors[i%len(sensors)], Param: telemetry.PH,
			Value: 7.4 * (1 + float64(i%7)/100), Time: t0}
		c.Check(&r, in)
		i++
	}
}

func TestSamplesAreJudgedByRangesOnly(t *testing.T) {
	c := New(Config{})
	now := time.Date(2025, 11, 13, 12, 0, 0, 0, time.UTC)
	for range 12 { // the same BOD every time would be a flatline of a probe
		r := telemetry.Reading{Station: "S", Sensor: "lab", Param: telemetry.BOD, Value: 4, Time: now.Add(-20 * 24 * time.Hour)}
		c.Check(&r, Input{Received: now, ClockSynced: true, Sample: true})
		assert.Equal(t, telemetry.Good, r.Quality, "a 20-day-old lab result is not 'past'")
		assert.Zero(t, r.Flags)
	}
	r := telemetry.Reading{Station: "S", Sensor: "lab", Param: telemetry.BOD, Value: 4, Time: now.Add(time.Hour)}
	c.Check(&r, Input{Received: now, ClockSynced: true, Sample: true})
	assert.True(t, r.Flags.Has(telemetry.FlagFuture), "a sample taken in the future is still suspect")
	r = telemetry.Reading{Station: "S", Sensor: "lab", Param: telemetry.PH, Value: 15, Time: now}
	c.Check(&r, Input{Received: now, Sample: true})
	assert.Equal(t, telemetry.Bad, r.Quality)
	assert.Equal(t, telemetry.FlagOutOfRange, r.Flags, "no time_unsynced: a person dated it")
}
