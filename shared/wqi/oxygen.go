package wqi

import (
	"fmt"
	"math"
	"strings"
)

// DOMethod selects how a dissolved-oxygen concentration in mg/L becomes the % saturation
// the index wants. The zero value means BensonKrause.
type DOMethod string

// The methods.
const (
	// BensonKrause divides by the saturation concentration at the water temperature and the
	// station's barometric pressure (Benson & Krause 1984, as in APHA 4500-O).
	BensonKrause DOMethod = "benson-krause"
	// MPCB divides by the constant 6.5 mg/L used in MPCB's Water Quality Status reports, so
	// results can be compared with published official indices.
	MPCB DOMethod = "mpcb"
)

// mpcbSaturationMgL is the constant MPCB's Water Quality Status reports take as 100 %
// saturation.
const mpcbSaturationMgL = 6.5

// ParseDOMethod resolves a method name, ignoring case and surrounding space. The empty string
// is BensonKrause, the default.
func ParseDOMethod(s string) (DOMethod, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", string(BensonKrause):
		return BensonKrause, nil
	case string(MPCB):
		return MPCB, nil
	}
	return "", fmt.Errorf("%w: %q (want %s or %s)", ErrUnknownDOMethod, s, BensonKrause, MPCB)
}

// orDefault maps the zero value to BensonKrause.
func (m DOMethod) orDefault() DOMethod {
	if m == "" {
		return BensonKrause
	}
	return m
}

// Saturation returns the dissolved-oxygen saturation concentration C* in mg/L of fresh water
// at tempC degrees Celsius under pressureAtm atmospheres of moist air. At 1 atm it is the
// Benson & Krause value unchanged.
//
// The equations hold for ordinary water temperatures (APHA tabulates 0–50 °C) and barometric
// pressures; Compute refuses inputs outside the range it accepts (see Input). A pressure below
// the vapour pressure of water at tempC gives a meaningless (negative) result.
func Saturation(tempC, pressureAtm float64) float64 {
	tk := tempC + 273.15
	// Benson & Krause (1984), as in APHA Standard Methods 4500-O: C* at 1 atm, mg/L.
	lnC := -139.34411 +
		1.575701e5/tk -
		6.642308e7/(tk*tk) +
		1.243800e10/(tk*tk*tk) -
		8.621949e11/(tk*tk*tk*tk)
	c := math.Exp(lnC)
	if pressureAtm == 1 {
		return c
	}
	// APHA 4500-O pressure correction: Pwv is the vapour pressure of water (atm), θ a
	// second-virial-coefficient term; at P = 1 the factor is exactly 1.
	pwv := math.Exp(11.8571 - 3840.70/tk - 216961/(tk*tk))
	theta := 0.000975 - 1.426e-5*tempC + 6.436e-8*tempC*tempC
	p := pressureAtm
	return c * p * (1 - pwv/p) * (1 - theta*p) / ((1 - pwv) * (1 - theta))
}

// PressureAtElevation returns the standard-atmosphere (ICAO/US 1976) barometric pressure in
// atm at meters above sea level: (1 − 2.25577e-5·h)^5.25588. Sea level is 1 atm; Pune at
// 560 m is about 0.935 atm. Above the model's top (about 44 km) it returns 0.
func PressureAtElevation(meters float64) float64 {
	base := 1 - 2.25577e-5*meters
	if base <= 0 {
		return 0
	}
	return math.Pow(base, 5.25588)
}

// DOSaturationPct converts a dissolved-oxygen concentration in mg/L to % saturation with
// method m. MPCB ignores temperature and pressure; any method other than MPCB (including the
// zero value) is BensonKrause. It does not validate its inputs: Compute does.
func DOSaturationPct(doMgL, tempC, pressureAtm float64, m DOMethod) float64 {
	if m == MPCB {
		// MPCB Water Quality Status reports: DO% = 100 · DO / 6.5 mg/L.
		return 100 * doMgL / mpcbSaturationMgL
	}
	// DO% = 100 · DO / C*(T, P), C* from Benson & Krause (1984) / APHA 4500-O.
	return 100 * doMgL / Saturation(tempC, pressureAtm)
}
