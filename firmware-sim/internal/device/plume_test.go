package device

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/shared/telemetry"
)

func TestPlumeAtStations(t *testing.T) {
	start := time.Date(2026, 1, 12, 2, 0, 0, 0, time.UTC)
	p := Plume{River: "Mula-Mutha", SourceKm: 0, Start: start, Duration: 3 * time.Hour, Severity: 0.9, Speed: 0.5}
	pune1, _ := Lookup("MH-PUNE-001")
	pune2, _ := Lookup("MH-PUNE-002")
	nashik, _ := Lookup("MH-NASHIK-001")
	tests := []struct {
		st       Station
		ok       bool
		delay    time.Duration
		severity float64
	}{
		// 0.5 km at 0.5 m/s: 1000 s; 0.9·e^(−0.5/40).
		{pune1, true, 1000 * time.Second, 0.9 * 0.98757780049},
		// 9.5 km: 19000 s (5 h 16 min 40 s); 0.9·e^(−9.5/40).
		{pune2, true, 19000 * time.Second, 0.9 * 0.78859689098},
		{nashik, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.st.ID, func(t *testing.T) {
			e, ok := p.At(tt.st)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, start.Add(tt.delay), e.Start)
			assert.Equal(t, 3*time.Hour, e.End.Sub(e.Start))
			assert.InDelta(t, tt.severity, e.Severity, 1e-9)
			assert.Equal(t, tt.delay, p.TravelTime(tt.st))
		})
	}
	t.Run("a plume entering below a station never reaches it", func(t *testing.T) {
		_, ok := Plume{River: "Mula-Mutha", SourceKm: 5, Start: start, Duration: time.Hour, Severity: 1}.At(pune1)
		assert.False(t, ok)
	})
}

func TestPlumeChangesTheWaterDownstream(t *testing.T) {
	start := time.Date(2026, 1, 12, 2, 0, 0, 0, time.UTC)
	p := Plume{River: "Mula-Mutha", SourceKm: 0, Start: start, Duration: 4 * time.Hour, Severity: 1}
	pune2, _ := Lookup("MH-PUNE-002")
	plain := New(pune2, 5)
	withPlume := plain.WithPlumes(p)
	e, _ := p.At(pune2)
	mid := e.Start.Add(2 * time.Hour)
	assert.Less(t, withPlume.Value(telemetry.DO, mid), 0.7*plain.Value(telemetry.DO, mid), "DO drops as it passes")
	assert.Greater(t, withPlume.Value(telemetry.BOD, mid), 1.5*plain.Value(telemetry.BOD, mid), "BOD rises")
	before := e.Start.Add(-time.Minute)
	assert.Equal(t, plain.Value(telemetry.DO, before), withPlume.Value(telemetry.DO, before), "not before it arrives")
	assert.Equal(t, plain.Value(telemetry.DO, start), New(pune2, 5).Value(telemetry.DO, start), "WithPlumes leaves the model alone")

	ins := withPlume.Incidents(start, start.Add(24*time.Hour))
	var found bool
	for _, in := range ins {
		if in.Origin == "plume" {
			found = true
			assert.Equal(t, e.Start, in.Start)
			from, to := in.Effect()
			assert.Equal(t, e.Start, from)
			assert.Equal(t, e.End.Add(270*time.Minute), to)
		}
	}
	assert.True(t, found, "the plume is in the ground truth: %+v", ins)
}

func TestUpstreamEventsTravelDown(t *testing.T) {
	pune1, _ := Lookup("MH-PUNE-001")
	pune2, _ := Lookup("MH-PUNE-002")
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	up := New(pune1, 3).Events(from, to)
	require.NotEmpty(t, up)
	down := New(pune2, 3)
	travel := time.Duration(9000 / DefaultPlumeSpeed * float64(time.Second)) // 9 km at 0.4 m/s: 6 h 15 min
	var own, arrived int
	for _, in := range down.Incidents(from, to) {
		switch in.Origin {
		case "":
			own++
		case "MH-PUNE-001":
			arrived++
		default:
			t.Errorf("unexpected origin %q", in.Origin)
		}
	}
	assert.Positive(t, own, "its own discharges")
	assert.Equal(t, len(up), arrived, "every discharge at Sangam arrives at Mundhwa")
	for _, e := range up[:3] {
		mid := e.Start.Add(travel + e.End.Sub(e.Start)/2)
		assert.Positive(t, down.eventIntensity(mid), "at %s", mid)
	}
	// Nothing travels upstream.
	for _, in := range New(pune1, 3).Incidents(from, to) {
		assert.Empty(t, in.Origin)
	}
}

func TestDriftAndStuckSetInAtTheOrigin(t *testing.T) {
	pune2, _ := Lookup("MH-PUNE-002")
	m := New(pune2, 1)
	origin := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	healthy := NewProbe(m, telemetry.PH, 0, FaultNone, origin)
	for _, f := range []Fault{FaultDrift, FaultStuck} {
		p := NewProbe(m, telemetry.PH, 0, f, origin)
		assert.Equal(t, origin, p.Origin())
		for _, d := range []time.Duration{-3 * time.Hour, -time.Minute} {
			at := origin.Add(d)
			assert.Equal(t, healthy.Read(at), p.Read(at), "%s %s before", f, -d)
		}
	}
	drift := NewProbe(m, telemetry.PH, 0, FaultDrift, origin)
	later := origin.Add(10 * time.Hour)
	assert.InDelta(t, healthy.Read(later).Value+1, drift.Read(later).Value, 0.011, "pH drifts 0.1 an hour after")
}

func TestHasOnset(t *testing.T) {
	for _, f := range Faults() {
		assert.Equal(t, f == FaultDrift || f == FaultStuck, f.HasOnset(), f)
	}
}
