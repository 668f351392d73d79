package satellite

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// Collections the client reads, by their Statistical API data types.
const (
	Sentinel2L2A = "sentinel-2-l2a"
	LandsatOTL2  = "landsat-ot-l2"
)

// Turbidity algorithms.
const (
	Nechad    = "nechad"    // Nechad et al. (2016) on B4: the default
	Dogliotti = "dogliotti" // Dogliotti et al. (2015), switching to B8A in turbid water
)

// outputID names the evalscripts' output of band values; dataMask is the mask output.
const outputID = "water"

// crs84 is longitude, latitude on WGS 84, the CRS of GeoJSON bounds; resolutions are then
// in degrees.
const crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

// product is one collection's request and how its band means become estimates.
type product struct {
	collection  string
	resolutionM float64 // ground resolution the statistics are computed at
	evalscript  string
	// harmonize says whether the collection takes processing.harmonizeValues (Sentinel-2
	// L2A: we turn it off and apply BOA_ADD_OFFSET ourselves, by the scene's date).
	harmonize bool
	// estimate turns one scene's band means (B0, B1, ...) into values by parameter;
	// false for a value it cannot give.
	estimate func(means []float64, scene time.Time) map[telemetry.Param]float64
	bands    int
}

// s2Evalscript returns B04, B05 and B8A as digital numbers over water pixels only: the
// L2A scene classification's water class (SCL 6), which also leaves out clouds, cloud
// shadows and land.
const s2Evalscript = `//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B05", "B8A", "SCL", "dataMask"], units: "DN"}],
    output: [{id: "water", bands: 3, sampleType: "FLOAT32"}, {id: "dataMask", bands: 1}]
  };
}
function evaluatePixel(s) {
  var water = s.SCL == 6 ? 1 : 0;
  return {water: [s.B04, s.B05, s.B8A], dataMask: [s.dataMask * water]};
}`

// landsatEvalscript returns ST_B10 as digital numbers over clear water pixels: QA_PIXEL
// (BQA) bit 7 water, bits 3 and 4 cloud and cloud shadow (Landsat Collection 2 Level-2
// Science Product Guide), DN 0 being no data.
const landsatEvalscript = `//VERSION=3
function setup() {
  return {
    input: [{bands: ["ST_B10", "BQA", "dataMask"], units: "DN"}],
    output: [{id: "water", bands: 1, sampleType: "FLOAT32"}, {id: "dataMask", bands: 1}]
  };
}
function evaluatePixel(s) {
  var qa = s.BQA;
  var clear = ((qa >> 3) & 1) == 0 && ((qa >> 4) & 1) == 0;
  var water = ((qa >> 7) & 1) == 1;
  var ok = s.dataMask == 1 && s.ST_B10 > 0 && clear && water ? 1 : 0;
  return {water: [s.ST_B10], dataMask: [ok]};
}`

func products(turbidity string) map[string]product {
	return map[string]product{
		Sentinel2L2A: {
			collection: Sentinel2L2A, resolutionM: 10, evalscript: s2Evalscript, harmonize: true, bands: 3,
			estimate: func(m []float64, at time.Time) map[telemetry.Param]float64 {
				// L2A bottom-of-atmosphere reflectance stands for the water reflectance
				// ρw the algorithms want (no sky-glint correction). The estimates use the
				// scene's mean reflectances: over the water pixels of one station they
				// vary little, and per-pixel values would need the algorithms in the
				// evalscript, out of reach of our tests.
				red, redEdge, nir := Reflectance(m[0], at), Reflectance(m[1], at), Reflectance(m[2], at)
				out := map[telemetry.Param]float64{}
				var t float64
				if turbidity == Dogliotti {
					t = TurbidityDogliotti(red, nir)
				} else {
					t = TurbidityNechad(red)
				}
				if red > 0 && t >= 0 && !math.IsInf(t, 0) {
					out[telemetry.Turbidity] = t
				}
				if red > 0 && redEdge > 0 {
					out[telemetry.Chla] = ChlaNDCI(NDCI(red, redEdge))
				}
				return out
			},
		},
		LandsatOTL2: {
			collection: LandsatOTL2, resolutionM: 30, evalscript: landsatEvalscript, bands: 1,
			estimate: func(m []float64, _ time.Time) map[telemetry.Param]float64 {
				if c, ok := SurfaceTempC(m[0]); ok {
					return map[telemetry.Param]float64{telemetry.Temp: c}
				}
				return nil
			},
		},
	}
}

// request encodes the statistics request of one product, area and week.
func (p product) request(a Area, from, to time.Time, maxCloudPct float64) ([]byte, error) {
	dLon, dLat := degrees(p.resolutionM, a.center())
	data := map[string]any{
		"type":       p.collection,
		"dataFilter": map[string]any{"maxCloudCoverage": maxCloudPct},
	}
	if p.harmonize {
		data["processing"] = map[string]any{"harmonizeValues": false}
	}
	req := map[string]any{
		"input": map[string]any{
			"bounds": map[string]any{
				"geometry":   map[string]any{"type": "Polygon", "coordinates": [][][2]float64{a.Ring()}},
				"properties": map[string]any{"crs": crs84},
			},
			"data": []any{data},
		},
		"aggregation": map[string]any{
			"timeRange":           map[string]any{"from": from.UTC().Format(time.RFC3339), "to": to.UTC().Format(time.RFC3339)},
			"aggregationInterval": map[string]any{"of": "P1D"},
			"evalscript":          p.evalscript,
			"resx":                dLon,
			"resy":                dLat,
		},
		"calculations": map[string]any{"default": map[string]any{}},
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode statistics request: %w", err)
	}
	return b, nil
}
