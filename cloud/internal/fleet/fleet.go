// Package fleet judges the fleet of stations by their health records: the two things a
// fleet operator looks for first — a station whose buffer would fill within a day with
// the uplink down, and one running an older agent than the newest in the fleet. The
// query API's GET /v1/fleet and `ph-cloud fleet` show its verdicts; the dashboard's
// Fleet page (static/fleet.js) applies the same two rules to the live health events as
// they arrive.
package fleet

import (
	"cmp"
	"regexp"
	"strconv"

	"github.com/purehealth/purehealth/cloud/internal/store"
)

// LowAutonomyHours: a station whose buffer absorbs less than a day of its readings with
// the uplink down needs attention before a long outage, not after.
const LowAutonomyHours = 24.0

// Station is one station of the fleet with the verdicts of the two rules.
type Station struct {
	store.FleetStation
	// VersionLags: the station runs an older agent than the newest in the fleet.
	VersionLags bool `json:"version_lags"`
	// AutonomyLow: its buffer absorbs less than LowAutonomyHours at its current rate.
	AutonomyLow bool `json:"autonomy_low"`
}

// View is the fleet as GET /v1/fleet answers.
type View struct {
	// NewestVersion is the newest agent version any station reports ("" when none can be
	// ordered).
	NewestVersion string    `json:"newest_version,omitempty"`
	Stations      []Station `json:"stations"`
}

// Build judges every station against the fleet.
func Build(stations []store.FleetStation) View {
	v := View{Stations: make([]Station, 0, len(stations))}
	var newest version
	for _, s := range stations {
		if s.Version == nil {
			continue
		}
		if p, ok := parseVersion(*s.Version); ok && (v.NewestVersion == "" || p.compare(newest) > 0) {
			newest, v.NewestVersion = p, *s.Version
		}
	}
	for _, s := range stations {
		st := Station{FleetStation: s}
		if s.Version != nil && v.NewestVersion != "" {
			if p, ok := parseVersion(*s.Version); ok && p.compare(newest) < 0 {
				st.VersionLags = true
			}
		}
		if s.Buffer != nil && s.Buffer.AutonomyH != nil && *s.Buffer.AutonomyH < LowAutonomyHours {
			st.AutonomyLow = true
		}
		v.Stations = append(v.Stations, st)
	}
	return v
}

// version is an agent version as `git describe` makes them: v1.4.2, or v1.4.2-14-gabc1234
// for 14 commits after the tag (with -dirty for a build from a modified tree).
type version struct {
	major, minor, patch, ahead int
}

var versionPattern = regexp.MustCompile(`^v?(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?(?:-(\d{1,9})-g[0-9a-f]+)?(?:-dirty)?$`)

// parseVersion reads a version; ok is false for one that cannot be ordered (a bare
// commit hash, "dev").
func parseVersion(s string) (version, bool) {
	m := versionPattern.FindStringSubmatch(s)
	if m == nil {
		return version{}, false
	}
	n := func(s string) int {
		v, _ := strconv.Atoi(s) // digits only, at most nine of them; "" is 0
		return v
	}
	return version{n(m[1]), n(m[2]), n(m[3]), n(m[4])}, true
}

func (a version) compare(b version) int {
	return cmp.Or(cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor),
		cmp.Compare(a.patch, b.patch), cmp.Compare(a.ahead, b.ahead))
}
