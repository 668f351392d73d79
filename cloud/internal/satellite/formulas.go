package satellite

import (
	"math"
	"slices"
	"time"
)

// Baseline04 is when ESA's Sentinel-2 processing baseline 04.00 started shifting L2A
// digital numbers by BOA_ADD_OFFSET = -1000 (ESA, "Sentinel-2: New Processing Baseline
// 04.00", 25 January 2022), so that dark water no longer clips at zero.
var Baseline04 = time.Date(2022, 1, 25, 0, 0, 0, 0, time.UTC)

// Reflectance converts a Sentinel-2 L2A digital number of a scene acquired at t to
// bottom-of-atmosphere reflectance: (DN + BOA_ADD_OFFSET) / 10000, the offset being -1000
// from processing baseline 04.00 on and 0 before (Sentinel-2 Products Specification
// Document, S2-PDGS-TAS-DI-PSD, issue 14.9). DN 1200 is 0.12 before and 0.02 after.
func Reflectance(dn float64, t time.Time) float64 {
	offset := 0.0
	if !t.Before(Baseline04) {
		offset = -1000
	}
	return (dn + offset) / 10000
}

// NDCI is the Normalized Difference Chlorophyll Index of Mishra & Mishra (2012), from the
// red-edge band B5 (about 705 nm) and the red band B4 (665 nm): (B5 - B4) / (B5 + B4).
// Mishra, S. & Mishra, D.R. (2012), Remote Sensing of Environment 117:394-406.
func NDCI(b4, b5 float64) float64 { return (b5 - b4) / (b5 + b4) }

// ChlaNDCI is chlorophyll-a in µg/L from the NDCI, by the quadratic calibration of Mishra
// & Mishra (2012): 14.039 + 86.115·NDCI + 194.325·NDCI². It was fitted on US estuaries and
// coastal bays (Chesapeake and Delaware bays, Mobile Bay, the Mississippi delta): for
// Deccan rivers it is indicative only. NDCI 1/3 (B4 0.015, B5 0.03) gives 64.3357.
func ChlaNDCI(ndci float64) float64 {
	return 14.039 + 86.115*ndci + 194.325*ndci*ndci
}

// Nechad et al. (2016) single-band turbidity coefficients for Sentinel-2 B4 (665 nm).
const (
	NechadA = 366.14
	NechadC = 0.19563
)

// TurbidityNechad is turbidity in FNU from the water reflectance ρw = π·Rrs (not Rrs) of
// Sentinel-2 B4 by the single-band algorithm T = A·ρw / (1 - ρw/C) of Nechad, B.,
// Dogliotti, A., Ruddick, K. & Doxaran, D. (2016), "Particulate backscattering and
// suspended matter concentration retrieval from remote-sensed turbidity in various
// coastal and riverine turbid waters", ESA Living Planet Symposium (SP-740), with their
// coefficients for B4. ρw 0.01, 0.03, 0.05 give 3.8586, 12.9737, 24.5924.
func TurbidityNechad(rhoW float64) float64 { return singleBand(rhoW, NechadA, NechadC) }

func singleBand(rho, a, c float64) float64 { return a * rho / (1 - rho/c) }

// Dogliotti et al. (2015) coefficients of the red (645-665 nm) and near-infrared (859 nm,
// Sentinel-2 B8A) algorithms and the reflectances between which it switches.
const (
	DogliottiRedA, DogliottiRedC = 228.1, 0.1641
	DogliottiNIRA, DogliottiNIRC = 3078.9, 0.2112
	dogliottiLow, dogliottiHigh  = 0.05, 0.07
)

// TurbidityDogliotti is turbidity in FNU by the switching algorithm of Dogliotti, A.I.,
// Ruddick, K.G., Nechad, B., Doxaran, D. & Knaeps, E. (2015), "A single algorithm to
// retrieve turbidity from remotely-sensed data in all coastal and estuarine waters",
// Remote Sensing of Environment 156:157-168: the red algorithm below ρw(red) 0.05 (where
// it is sensitive), the NIR one from 0.07 (where red saturates), a linear blend with
// weight (ρw_red - 0.05)/0.02 between. red 0.06, NIR 0.01 give 26.9467.
func TurbidityDogliotti(red, nir float64) float64 {
	tRed := singleBand(red, DogliottiRedA, DogliottiRedC)
	tNIR := singleBand(nir, DogliottiNIRA, DogliottiNIRC)
	switch {
	case red < dogliottiLow:
		return tRed
	case red >= dogliottiHigh:
		return tNIR
	}
	w := (red - dogliottiLow) / (dogliottiHigh - dogliottiLow)
	return (1-w)*tRed + w*tNIR
}

// Landsat Collection 2 Level-2 surface temperature scaling (USGS, "Landsat 8-9 Collection
// 2 Level 2 Science Product Guide", LSDS-1619): K = DN·0.00341802 + 149.0; DN 0 is no data.
const (
	STScale  = 0.00341802
	STOffset = 149.0
)

// SurfaceTempC is the water surface temperature in °C of a Landsat 8/9 Collection 2
// Level-2 ST_B10 digital number. DN 44000 is 299.39288 K, 26.24288 °C. ok is false for
// DN 0 (no data).
func SurfaceTempC(dn float64) (c float64, ok bool) {
	if dn <= 0 {
		return 0, false
	}
	return dn*STScale + STOffset - 273.15, true
}

// Median is the median of xs (the mean of the middle two for an even count); NaN for none.
// The weekly value of an estimate is the median of its scene means, so that one scene
// with haze or a sun glint the masks missed does not move it.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
