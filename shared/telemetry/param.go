// Package telemetry defines what a water-quality measurement is, in the terms both the
// station agent and the cloud agree on: the canonical parameters and their units, the
// aliases that field devices use for them, and the Reading record with its quality.
//
// Everything here is pure: no I/O, no clocks, no goroutines. All functions are safe for
// concurrent use.
package telemetry

import (
	"fmt"
	"sort"
	"strings"
)

// Param is a canonical parameter name (contract: these strings appear in MQTT topics, the
// database and the JSON API).
type Param string

// The canonical parameters.
const (
	PH           Param = "ph"
	DO           Param = "do"
	BOD          Param = "bod"
	FC           Param = "fc"
	TDS          Param = "tds"
	Temp         Param = "temp"
	Turbidity    Param = "turbidity"
	Conductivity Param = "conductivity"
	Chla         Param = "chla"

	// Hydrological and weather context from CWC, IMD and station gauges. They explain
	// water quality (a flood dilutes, the first rain of the monsoon flushes drains) but are
	// no inputs of the WQI. Air temperature is its own parameter so that a weather
	// station's reading never stands in for the water's temperature (which the DO
	// saturation depends on).
	WaterLevel Param = "water_level"
	Discharge  Param = "discharge"
	Rainfall   Param = "rainfall"
	AirTemp    Param = "air_temp"
)

// Range is a closed interval of values.
type Range struct{ Min, Max float64 }

// Contains reports whether v lies in [Min, Max].
func (r Range) Contains(v float64) bool { return v >= r.Min && v <= r.Max }

// ParamInfo describes one canonical parameter.
type ParamInfo struct {
	Param Param
	Unit  string // canonical unit (contract)
	// Physical is what the quantity can be at all: a value outside is a probe fault and the
	// reading is bad.
	Physical Range
	// Plausible is what a river in our deployment area has been seen to show: outside it the
	// reading is suspect, kept and alerted on but treated with care.
	Plausible Range
}

// The physical ranges are the design contract. The plausible ranges are ours: they bracket
// the extremes reported for Maharashtra rivers in CPCB/MPCB water quality yearbooks with a
// wide margin, so that a real pollution event is still "good" data and only instrument
// trouble lands outside.
var params = map[Param]ParamInfo{
	PH:           {PH, "pH", Range{0, 14}, Range{4, 11}},
	DO:           {DO, "mg/L", Range{0, 25}, Range{0, 20}},
	BOD:          {BOD, "mg/L", Range{0, 1000}, Range{0, 300}},
	FC:           {FC, "MPN/100mL", Range{0, 1e9}, Range{0, 1e8}},
	TDS:          {TDS, "mg/L", Range{0, 100000}, Range{0, 10000}},
	Temp:         {Temp, "degC", Range{-5, 60}, Range{5, 45}},
	Turbidity:    {Turbidity, "NTU", Range{0, 10000}, Range{0, 5000}},
	Conductivity: {Conductivity, "uS/cm", Range{0, 200000}, Range{0, 15000}},
	Chla:         {Chla, "ug/L", Range{0, 1000}, Range{0, 500}},
	// Water level is a gauge reading or a level above mean sea level, as CWC publishes it:
	// physically anything between the deepest land depression (-430 m) and the highest
	// gauged rivers (about 5000 m); plausibly at most a few metres below a gauge's zero and
	// below the Sahyadri crest (about 1500 m) in Maharashtra.
	WaterLevel: {WaterLevel, "m", Range{-500, 6000}, Range{-5, 1500}},
	// Discharge: the Amazon's floods (about 3e5 m3/s) bound it; the Godavari's largest
	// floods (about 1e5 m3/s) bound what a Maharashtra river plausibly carries.
	Discharge: {Discharge, "m3/s", Range{0, 400000}, Range{0, 100000}},
	// Rainfall over the reporting period (a day, sometimes a month): the largest monthly
	// total ever recorded (Cherrapunji, July 1861, about 9300 mm) bounds it; Mahabaleshwar's
	// wettest months (about 3000 mm) bound what is plausible in Maharashtra.
	Rainfall: {Rainfall, "mm", Range{0, 10000}, Range{0, 3000}},
	// Air temperature: the records of the Earth's surface bound it; the extremes of the
	// Deccan and the Vidarbha heat (about 2 and 48 °C) with a margin what is plausible.
	AirTemp: {AirTemp, "degC", Range{-90, 60}, Range{-2, 50}},
}

// Params returns every canonical parameter, sorted by name.
func Params() []Param {
	out := make([]Param, 0, len(params))
	for p := range params {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Info returns the description of a canonical parameter.
func Info(p Param) (ParamInfo, bool) {
	info, ok := params[p]
	return info, ok
}

// Context reports whether p describes the river's hydrology or the weather rather than its
// water quality: such values explain the others and are shown beside them, but they are
// no input of the WQI and no quality criterion applies to them.
func (p Param) Context() bool {
	switch p {
	case WaterLevel, Discharge, Rainfall, AirTemp:
		return true
	}
	return false
}

// Valid reports whether p is a canonical parameter.
func (p Param) Valid() bool {
	_, ok := params[p]
	return ok
}

// paramAliases maps folded spellings (see fold) to canonical parameters.
var paramAliases = map[string]Param{
	"ph": PH, "p_h": PH, "ph_value": PH,
	"do": DO, "dissolved_oxygen": DO, "dissolvedoxygen": DO, "oxygen": DO, "o2": DO,
	"bod": BOD, "bod5": BOD, "bod_5": BOD, "biochemical_oxygen_demand": BOD,
	"fc": FC, "fecal_coliform": FC, "faecal_coliform": FC, "fecal_coliforms": FC,
	"faecal_coliforms": FC, "fcoli": FC,
	"tds": TDS, "total_dissolved_solids": TDS,
	"temp": Temp, "temperature": Temp, "water_temperature": Temp, "water_temp": Temp,
	"wtemp":     Temp,
	"turbidity": Turbidity, "turb": Turbidity, "ntu": Turbidity,
	"conductivity": Conductivity, "ec": Conductivity, "cond": Conductivity,
	"electrical_conductivity": Conductivity, "specific_conductance": Conductivity,
	"spc":  Conductivity,
	"chla": Chla, "chl_a": Chla, "chlorophyll": Chla, "chlorophyll_a": Chla, "chl": Chla,
	"water_level": WaterLevel, "waterlevel": WaterLevel, "level": WaterLevel,
	"river_level": WaterLevel, "river_water_level": WaterLevel, "stage": WaterLevel,
	"gauge": WaterLevel, "gauge_height": WaterLevel, "wl": WaterLevel,
	"discharge": Discharge, "flow": Discharge, "streamflow": Discharge,
	"river_discharge": Discharge, "q": Discharge,
	"rainfall": Rainfall, "rain": Rainfall, "precipitation": Rainfall, "precip": Rainfall,
	"rf":       Rainfall,
	"air_temp": AirTemp, "air_temperature": AirTemp, "airtemp": AirTemp, "tair": AirTemp,
	"air_temp_c": AirTemp,
}

// fold lower-cases s and turns spaces, hyphens and dots into underscores, so "Dissolved
// Oxygen", "dissolved-oxygen" and "dissolved_oxygen" meet.
func fold(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.':
			return '_'
		}
		return r
	}, s)
}

// ParseParam resolves a parameter name or one of its common aliases.
func ParseParam(s string) (Param, error) {
	if p, ok := paramAliases[fold(s)]; ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownParam, s)
}
