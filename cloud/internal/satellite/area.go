package satellite

import (
	"errors"
	"fmt"
	"math"
)

// Area is the water around a station whose pixels an estimate counts: a circle of RadiusM
// metres around Lat, Lon, or a Polygon of [lon, lat] positions (GeoJSON order, WGS 84).
// A polygon should follow the river's banks; a circle takes land pixels too, which the
// water masks then drop.
type Area struct {
	Lat     float64      `json:"lat"`
	Lon     float64      `json:"lon"`
	RadiusM float64      `json:"radius_m"`
	Polygon [][2]float64 `json:"polygon"`
}

// Area limits.
const (
	MaxRadiusM      = 5000 // an estimate is about the water at a station, not a district
	circleVertices  = 32
	maxPolygonVerts = 1000
)

// Validate checks the area.
func (a Area) Validate() error {
	if len(a.Polygon) > 0 {
		if a.RadiusM != 0 {
			return errors.New("polygon and radius_m are exclusive")
		}
		if len(a.Polygon) < 3 || len(a.Polygon) > maxPolygonVerts {
			return fmt.Errorf("polygon: 3 to %d positions, got %d", maxPolygonVerts, len(a.Polygon))
		}
		for i, p := range a.Polygon {
			if !validLonLat(p[0], p[1]) {
				return fmt.Errorf("polygon[%d] %v: want [lon, lat] within [-180, 180] and [-90, 90]", i, p)
			}
		}
		return nil
	}
	if !validLonLat(a.Lon, a.Lat) {
		return fmt.Errorf("lat %v, lon %v: want within [-90, 90] and [-180, 180]", a.Lat, a.Lon)
	}
	if !(a.RadiusM > 0 && a.RadiusM <= MaxRadiusM) {
		return fmt.Errorf("radius_m %v: want more than 0 and at most %d (or a polygon)", a.RadiusM, MaxRadiusM)
	}
	return nil
}

func validLonLat(lon, lat float64) bool {
	return lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90 && !math.IsNaN(lon) && !math.IsNaN(lat)
}

// Ring returns the area's outer ring, closed (the first position repeated at the end),
// counter-clockwise for a circle, as GeoJSON wants it.
func (a Area) Ring() [][2]float64 {
	if len(a.Polygon) > 0 {
		ring := append([][2]float64(nil), a.Polygon...)
		if ring[0] != ring[len(ring)-1] {
			ring = append(ring, ring[0])
		}
		return ring
	}
	ring := make([][2]float64, 0, circleVertices+1)
	for i := range circleVertices {
		bearing := 2 * math.Pi * float64(i) / circleVertices
		lat, lon := destination(a.Lat, a.Lon, bearing, a.RadiusM)
		ring = append(ring, [2]float64{lon, lat})
	}
	// Bearings grow clockwise (from north through east): reverse for counter-clockwise.
	for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
		ring[i], ring[j] = ring[j], ring[i]
	}
	return append(ring, ring[0])
}

// center returns the area's reference latitude (for converting metres to degrees).
func (a Area) center() (lat float64) {
	if len(a.Polygon) == 0 {
		return a.Lat
	}
	for _, p := range a.Polygon {
		lat += p[1]
	}
	return lat / float64(len(a.Polygon))
}

const earthRadiusM = 6371008.8 // mean radius (IUGG)

// destination is the point d metres from lat, lon on the given bearing (radians from
// north), on a sphere.
func destination(lat, lon, bearing, d float64) (float64, float64) {
	rad := math.Pi / 180
	φ1, λ1, δ := lat*rad, lon*rad, d/earthRadiusM
	φ2 := math.Asin(math.Sin(φ1)*math.Cos(δ) + math.Cos(φ1)*math.Sin(δ)*math.Cos(bearing))
	λ2 := λ1 + math.Atan2(math.Sin(bearing)*math.Sin(δ)*math.Cos(φ1), math.Cos(δ)-math.Sin(φ1)*math.Sin(φ2))
	return φ2 / rad, λ2 / rad
}

// degrees returns a resolution of m metres as degrees of longitude and latitude at lat.
func degrees(m, lat float64) (dLon, dLat float64) {
	perDegLat := math.Pi * earthRadiusM / 180
	return m / (perDegLat * math.Cos(lat*math.Pi/180)), m / perDegLat
}
