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
