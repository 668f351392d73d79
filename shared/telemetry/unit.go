package telemetry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors returned by ParseParam and Normalize. Match them with errors.Is.
var (
	ErrUnknownParam = errors.New("unknown parameter")
	ErrUnitMismatch = errors.New("unit does not fit parameter")
	ErrNotFinite    = errors.New("value is not a finite number")
)

// linear converts a value in some unit to the canonical unit: canonical = v*scale + offset.
type linear struct{ scale, offset float64 }

var identity = linear{1, 0}

// unitsByParam lists, per parameter, the unit spellings we accept (folded by appendFoldUnit) and
// how they convert. The empty unit means "the canonical unit" (a bare number).
//
// Choices worth stating: CFU/100mL is accepted for fecal coliform as equivalent to MPN (the
// two methods differ but are reported interchangeably in Indian monitoring data); FNU and
// FTU are accepted as NTU (ISO 7027 vs EPA 180.1 instruments agree within their error on
// river water); ppm is mg/L for dilute water. Indian hydrology reports discharge in cumecs
// (m3/s) or cusecs (ft3/s) and gauges in metres or feet.
var unitsByParam = map[Param]map[string]linear{
	PH: {"": identity, "ph": identity, "ph_units": identity, "ph_unit": identity, "-": identity},
	DO: {"": identity, "mg/l": identity, "ppm": identity, "mg_l": identity, "mgl": identity},
	BOD: {"": identity, "mg/l": identity, "ppm": identity, "mg_l": identity,
		"mgl": identity},
	FC: {"": identity, "mpn/100ml": identity, "mpn": identity, "cfu/100ml": identity,
		"mpn_100ml": identity, "cfu_100ml": identity, "mpn/100_ml": identity,
		"cfu/100_ml": identity},
	TDS: {"": identity, "mg/l": identity, "ppm": identity, "mg_l": identity,
		"g/l": {1000, 0}, "ppt": {1000, 0}},
	Temp:      temperatureUnits,
	AirTemp:   temperatureUnits,
	Turbidity: {"": identity, "ntu": identity, "fnu": identity, "ftu": identity},
	Conductivity: {"": identity, "us/cm": identity, "µs/cm": identity,
		"μs/cm": identity, "umho/cm": identity, "µmho/cm": identity, "μmho/cm": identity,
		"umhos/cm": identity, "µmhos/cm": identity, "μmhos/cm": identity,
		"ms/cm": {1000, 0}, "s/m": {10000, 0}, "ms/m": {10, 0}},
	Chla: {"": identity, "ug/l": identity, "µg/l": identity, "μg/l": identity,
		"mg/m3": identity, "mg/m^3": identity, "mg/m³": identity},
	WaterLevel: {"": identity, "m": identity, "metre": identity, "meter": identity,
		"metres": identity, "meters": identity, "cm": {0.01, 0}, "ft": {0.3048, 0},
		"feet": {0.3048, 0}},
	Discharge: {"": identity, "m3/s": identity, "m^3/s": identity, "m³/s": identity,
		"cumec": identity, "cumecs": identity, "l/s": {0.001, 0},
		"ft3/s": {0.3048 * 0.3048 * 0.3048, 0}, "cusec": {0.3048 * 0.3048 * 0.3048, 0},
		"cusecs": {0.3048 * 0.3048 * 0.3048, 0}},
	Rainfall: {"": identity, "mm": identity, "cm": {10, 0}, "in": {25.4, 0},
		"inch": {25.4, 0}, "inches": {25.4, 0}},
}

// temperatureUnits are the spellings of water and air temperature.
var temperatureUnits = map[string]linear{"": identity, "degc": identity, "°c": identity,
	"c": identity, "celsius": identity, "deg_c": identity, "℃": identity,
	"degf": {5.0 / 9.0, -32 * 5.0 / 9.0}, "°f": {5.0 / 9.0, -32 * 5.0 / 9.0},
	"f": {5.0 / 9.0, -32 * 5.0 / 9.0}, "fahrenheit": {5.0 / 9.0, -32 * 5.0 / 9.0},
	"deg_f": {5.0 / 9.0, -32 * 5.0 / 9.0}, "℉": {5.0 / 9.0, -32 * 5.0 / 9.0},
	"k": {1, -273.15}, "kelvin": {1, -273.15}}

// appendFoldUnit appends u lower-cased, without its surrounding and inner spaces, to dst
// ("MPN/100 mL" → "mpn/100ml"): the spelling unitsByParam keys. Normalize folds the unit
// of every reading into a stack buffer, and a map looked up with string(bytes) allocates
// nothing, where strings.ToLower allocates for every unit with a capital ("mg/L", "NTU").
func appendFoldUnit(dst []byte, u string) []byte {
	// The spaces go first: bytes of invalid UTF-8 they separated may join into one
	// character, as they do for strings.ToLower of the joined string.
	var tmp [32]byte
	joined := tmp[:0]
	trimmed := strings.TrimSpace(u)
	for i := 0; i < len(trimmed); i++ {
		if trimmed[i] != ' ' {
			joined = append(joined, trimmed[i])
		}
	}
	for _, r := range string(joined) {
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
	}
	return dst
}

// Normalize resolves a parameter alias and converts value from unit to the parameter's
// canonical unit. It returns the canonical parameter, the converted value and the
// canonical unit. The error names what is wrong: an unknown parameter, a unit that does
// not fit the parameter, or a value that is NaN or infinite.
func Normalize(param string, value float64, unit string) (Param, float64, string, error) {
	p, err := ParseParam(param)
	if err != nil {
		return "", 0, "", err
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return "", 0, "", fmt.Errorf("%s: %w: %v", p, ErrNotFinite, value)
	}
	var buf [32]byte
	folded := appendFoldUnit(buf[:0], unit)
	conv, ok := unitsByParam[p][string(folded)]
	if !ok {
		if q, known := unitOwner(string(folded)); known {
			return "", 0, "", fmt.Errorf("%w: %q is a unit of %s, not of %s (want %s)",
				ErrUnitMismatch, unit, q, p, params[p].Unit)
		}
		return "", 0, "", fmt.Errorf("%w: %q is not a unit of %s (want %s)",
			ErrUnitMismatch, unit, p, params[p].Unit)
	}
	v := value*conv.scale + conv.offset
	if math.IsInf(v, 0) {
		return "", 0, "", fmt.Errorf("%s: %w: %v %s overflows in %s", p, ErrNotFinite, value, unit, params[p].Unit)
	}
	if conv != identity {
		// Round away binary noise from the conversion (25 °C must stay 25, not 24.999999).
		v = math.Round(v*1e9) / 1e9
	}
	return p, v, params[p].Unit, nil
}

// unitOwner finds some parameter that accepts the folded unit, for a helpful message.
func unitOwner(folded string) (Param, bool) {
	if folded == "" {
		return "", false
	}
	for _, p := range Params() {
		if _, ok := unitsByParam[p][folded]; ok {
			return p, true
		}
	}
	return "", false
}
