package device

import "slices"

// Station is a monitored river site and the character of the water that passes it.
type Station struct {
	ID    string // our station id, e.g. MH-PUNE-001
	Name  string // human name of the site
	River string
	// RiverKm is the distance along the river, growing downstream (the cloud's
	// river_km), from an origin chosen per river. Stations on the same river are ordered
	// by it, and what is discharged at one reaches those below it (see Plume).
	RiverKm  float64
	Lat, Lon float64
	Profile  Profile
}

// Profile is the character of a river at a station. Levels are dry-season (post-monsoon to
// pre-monsoon) typical values in each parameter's canonical unit; the seasonal, diurnal and
// event effects of the Model are applied on top of them.
type Profile struct {
	PH  float64 // typical pH
	DO  float64 // typical dissolved oxygen, mg/L, as a daily mean
	BOD float64 // typical BOD, mg/L
	// FC is the typical (geometric mean) fecal coliform count, MPN/100mL.
	FC float64
	// Conductivity is the typical conductivity, uS/cm; TDS follows it through TDSRatio.
	Conductivity float64
	TDSRatio     float64 // TDS (mg/L) per conductivity (uS/cm), 0.55–0.75 for river water
	Turbidity    float64 // typical turbidity, NTU
	Chla         float64 // typical chlorophyll-a, ug/L
	Temp         float64 // annual mean water temperature, degC

	TempAnnualAmp  float64 // half the spread between the hottest (May) and coolest months, degC
	TempDiurnalAmp float64 // half the daily water temperature swing, degC
	TempMonsoonDip float64 // how much the monsoon cools the water, degC
	DODiurnalAmp   float64 // half the daily DO swing from photosynthesis, mg/L
	PHDiurnalAmp   float64 // half the daily pH swing from photosynthesis
	DOMonsoonRise  float64 // DO gained at the height of the monsoon (more flow, reaeration), mg/L

	// MonsoonTurbidity multiplies turbidity at the height of the monsoon.
	MonsoonTurbidity float64
	// MonsoonFCLog10 raises log10(FC) at the height of the monsoon (runoff from the city,
	// overflowing drains).
	MonsoonFCLog10 float64
	// MonsoonDilution multiplies conductivity and TDS at the height of the monsoon (< 1);
	// BOD is diluted less (its exponent is 0.7).
	MonsoonDilution float64

	// EventsPerMonth is how many pollution events (untreated sewage or industrial discharge,
	// hours long) happen in a month on average.
	EventsPerMonth float64

	// Hydrology, as CWC and IMD publish it for the nearest gauge and rain station.

	// GaugeZero is the level of the gauge's zero above mean sea level, m: the water level
	// is GaugeZero plus the depth the rating curve gives for the discharge.
	GaugeZero float64
	// Discharge is the typical dry-season discharge, m3/s (for Pune and Kolhapur mostly
	// the cities' sewage and dam releases).
	Discharge float64
	// MonsoonDischarge multiplies the discharge at the height of the monsoon.
	MonsoonDischarge float64
	// MonsoonRain is the mean daily rainfall at the height of the monsoon, mm.
	MonsoonRain float64
}

// The baselines below are rough dry-season levels taken from the order of magnitude of the
// results published for these stretches in CPCB's National Water Quality Monitoring
// Programme data and "Polluted river stretches for restoration of water quality" reports, and
// in MPCB's annual "Water Quality Status of Maharashtra" reports (2018–2022 editions). They
// are typical values for a simulator, not measurements. Water temperatures follow the Deccan
// climate: warmest in May, cooled by the monsoon, coolest in December–January.
var stations = []Station{
	{
		// Downstream of the city, below the Mula and Mutha confluence: one of the most
		// polluted stretches in the state (a CPCB priority I stretch). Partly treated and
		// untreated sewage keep DO low and BOD and fecal coliform very high.
		ID: "MH-PUNE-001", Name: "Mula-Mutha at Sangam Bridge, Pune", River: "Mula-Mutha",
		RiverKm: 0.5, // half a kilometre below the confluence, km 0 of the Mula-Mutha
		Lat:     18.5293, Lon: 73.8627,
		Profile: Profile{
			PH: 7.6, DO: 3.3, BOD: 19, FC: 1.2e5, Conductivity: 680, TDSRatio: 0.64,
			Turbidity: 18, Chla: 35, Temp: 27,
			TempAnnualAmp: 2.2, TempDiurnalAmp: 1.2, TempMonsoonDip: 1.5,
			DODiurnalAmp: 1.0, PHDiurnalAmp: 0.15, DOMonsoonRise: 0.9,
			MonsoonTurbidity: 6, MonsoonFCLog10: 0.4, MonsoonDilution: 0.55,
			EventsPerMonth: 4,
			GaugeZero:      542, Discharge: 12, MonsoonDischarge: 60, MonsoonRain: 6,
		},
	},
	{
		// The same river nine kilometres downstream, past the city's eastern drains and
		// the Naidu sewage treatment outfall: a little worse in every respect. With
		// MH-PUNE-001 upstream it is where a discharge in the city shows again hours later.
		ID: "MH-PUNE-002", Name: "Mula-Mutha at Mundhwa Bridge, Pune", River: "Mula-Mutha",
		RiverKm: 9.5, Lat: 18.5362, Lon: 73.9238,
		Profile: Profile{
			PH: 7.5, DO: 2.8, BOD: 22, FC: 1.6e5, Conductivity: 720, TDSRatio: 0.64,
			Turbidity: 20, Chla: 38, Temp: 27,
			TempAnnualAmp: 2.2, TempDiurnalAmp: 1.1, TempMonsoonDip: 1.5,
			DODiurnalAmp: 0.9, PHDiurnalAmp: 0.14, DOMonsoonRise: 0.9,
			MonsoonTurbidity: 6, MonsoonFCLog10: 0.4, MonsoonDilution: 0.55,
			EventsPerMonth: 3,
			// Below the confluence the river carries both the Mula's and the Mutha's flow
			// and the city's sewage; the gauge sits lower, the rain is the city's.
			GaugeZero: 536, Discharge: 14, MonsoonDischarge: 60, MonsoonRain: 6,
		},
	},
	{
		// Godavari through Nashik (Ramkund and downstream): moderately polluted by the city's
		// drains, better oxygenated than Pune; large monsoon floods from the Gangapur dam
		// releases.
		ID: "MH-NASHIK-001", Name: "Godavari at Ramkund, Nashik", River: "Godavari",
		Lat: 20.0077, Lon: 73.7924,
		Profile: Profile{
			PH: 7.8, DO: 5.6, BOD: 8, FC: 2.5e4, Conductivity: 480, TDSRatio: 0.65,
			Turbidity: 12, Chla: 20, Temp: 25.5,
			TempAnnualAmp: 2.8, TempDiurnalAmp: 1.0, TempMonsoonDip: 1.5,
			DODiurnalAmp: 0.9, PHDiurnalAmp: 0.12, DOMonsoonRise: 0.7,
			MonsoonTurbidity: 10, MonsoonFCLog10: 0.5, MonsoonDilution: 0.6,
			EventsPerMonth: 2,
			GaugeZero:      557, Discharge: 4, MonsoonDischarge: 120, MonsoonRain: 6,
		},
	},
	{
		// Krishna at Sangli: the cleanest of the four, hard water with slightly alkaline pH;
		// very turbid in monsoon floods (2019, 2021).
		ID: "MH-SANGLI-001", Name: "Krishna at Irwin Bridge, Sangli", River: "Krishna",
		Lat: 16.8600, Lon: 74.5676,
		Profile: Profile{
			PH: 7.9, DO: 6.4, BOD: 4, FC: 4e3, Conductivity: 520, TDSRatio: 0.66,
			Turbidity: 9, Chla: 12, Temp: 26,
			TempAnnualAmp: 2.4, TempDiurnalAmp: 0.8, TempMonsoonDip: 1.5,
			DODiurnalAmp: 0.6, PHDiurnalAmp: 0.1, DOMonsoonRise: 0.5,
			MonsoonTurbidity: 15, MonsoonFCLog10: 0.5, MonsoonDilution: 0.55,
			EventsPerMonth: 1,
			GaugeZero:      534, Discharge: 40, MonsoonDischarge: 40, MonsoonRain: 3,
		},
	},
	{
		// Panchganga at Kolhapur: a CPCB polluted stretch; the city's drains (Jayanti nala)
		// and sugar and textile industry discharges give recurring fish kills in the dry
		// season.
		ID: "MH-KOLHAPUR-001", Name: "Panchganga at Panchganga Ghat, Kolhapur",
		River: "Panchganga", Lat: 16.7120, Lon: 74.2315,
		Profile: Profile{
			PH: 7.6, DO: 4.6, BOD: 12, FC: 6e4, Conductivity: 430, TDSRatio: 0.63,
			Turbidity: 14, Chla: 25, Temp: 25.5,
			TempAnnualAmp: 2.4, TempDiurnalAmp: 1.0, TempMonsoonDip: 1.5,
			DODiurnalAmp: 0.9, PHDiurnalAmp: 0.12, DOMonsoonRise: 0.8,
			MonsoonTurbidity: 10, MonsoonFCLog10: 0.5, MonsoonDilution: 0.5,
			EventsPerMonth: 3,
			GaugeZero:      530, Discharge: 10, MonsoonDischarge: 80, MonsoonRain: 9,
		},
	},
}

// Stations returns the modelled stations, in a fixed order. The caller may modify the
// returned slice.
func Stations() []Station { return slices.Clone(stations) }

// Lookup returns the modelled station with the given id.
func Lookup(id string) (Station, bool) {
	for _, s := range stations {
		if s.ID == id {
			return s, true
		}
	}
	return Station{}, false
}

// ForStation returns the modelled station with the given id or, for an id we have no
// model of, a moderately polluted Deccan river under that id (Generic reports which).
func ForStation(id string) Station {
	if s, ok := Lookup(id); ok {
		return s
	}
	s, _ := Lookup("MH-NASHIK-001") // Godavari at Nashik: the middle of the four rivers
	s.ID, s.Name, s.River = id, "Simulated river station "+id, "simulated"
	s.Lat, s.Lon, s.RiverKm = 0, 0, 0
	return s
}

// Generic reports whether id has no station model of its own, so ForStation gives it the
// generic profile.
func Generic(id string) bool {
	_, ok := Lookup(id)
	return !ok
}
