package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/purehealth/purehealth/cloud/internal/store"
	"github.com/purehealth/purehealth/shared/wire"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want version
		ok   bool
	}{
		{"v1.4.2", version{1, 4, 2, 0}, true},
		{"1.4.2", version{1, 4, 2, 0}, true},
		{"v1.4", version{1, 4, 0, 0}, true},
		{"v1.4.2-14-gabc1234", version{1, 4, 2, 14}, true},
		{"v1.4.2-14-gabc1234-dirty", version{1, 4, 2, 14}, true},
		{"v1.4.2-dirty", version{1, 4, 2, 0}, true},
		{"dev", version{}, false},
		{"abc1234", version{}, false},
		{"v1.4.2-rc1", version{}, false},
		{"v1.99999999999.0", version{}, false},
		{"", version{}, false},
	}
	for _, tt := range tests {
		got, ok := parseVersion(tt.in)
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func str(s string) *string { return &s }

func TestBuildJudgesTheFleet(t *testing.T) {
	hours := func(h float64) *wire.HealthBuffer { return &wire.HealthBuffer{MaxBytes: 1 << 20, AutonomyH: &h} }
	stations := []store.FleetStation{
		{ID: "A", Version: str("v1.4.0"), Buffer: hours(200)},
		{ID: "B", Version: str("v1.3.9-30-gdeadbee"), Buffer: hours(23.9)},
		{ID: "C", Version: str("v1.4.0-2-gcafe123-dirty"), Buffer: hours(24)},
		{ID: "D", Version: str("dev"), Buffer: &wire.HealthBuffer{}}, // nothing arrives: no estimate
		{ID: "E"}, // never reported
	}
	v := Build(stations)
	assert.Equal(t, "v1.4.0-2-gcafe123-dirty", v.NewestVersion, "two commits past v1.4.0 is newer than it")
	lags := map[string]bool{}
	low := map[string]bool{}
	for _, s := range v.Stations {
		lags[s.ID], low[s.ID] = s.VersionLags, s.AutonomyLow
	}
	assert.Equal(t, map[string]bool{"A": true, "B": true, "C": false, "D": false, "E": false}, lags,
		"a version that cannot be ordered is never said to lag")
	assert.Equal(t, map[string]bool{"A": false, "B": true, "C": false, "D": false, "E": false}, low)

	assert.Empty(t, Build([]store.FleetStation{{ID: "X", Version: str("dev")}}).NewestVersion)
	assert.NotNil(t, Build(nil).Stations, "an empty fleet is an empty list")
}

// A version from an agent is untrusted input: parsing never panics, and the order it
// gives is consistent (antisymmetric, and a version equals itself).
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"v1.4.2", "v1.4.2-14-gabc1234-dirty", "dev", "1.2", "v0.0.0-0-g0"} {
		f.Add(s, "v1.4.2")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, okA := parseVersion(a)
		vb, okB := parseVersion(b)
		if !okA || !okB {
			return
		}
		if va.compare(vb) != -vb.compare(va) {
			t.Fatalf("compare(%q, %q) is not antisymmetric", a, b)
		}
		if va.compare(va) != 0 {
			t.Fatalf("%q differs from itself", a)
		}
	})
}
