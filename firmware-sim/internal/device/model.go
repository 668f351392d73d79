package device

import (
	"math"
	"slices"
	"time"

	"github.com/purehealth/purehealth/shared/telemetry"
)

// IST is India Standard Time, the local time of every station. A fixed zone, so the model
// needs no time zone database on the machine.
var IST = time.FixedZone("IST", 5*3600+30*60)

// Key parts naming the model's random processes. Changing one changes every simulated
// series, so they are fixed numbers.
const (
	kFlow uint64 = iota + 1
	kTemp
	kPH
	kDO
	kBOD
	kFC
	kConductivity
	kTDS
	kTurbidity
	kChla
	kEvent
	kNoise
	kWaterLevel
	kDischarge
	kRainfall
	kAirTemp
)

// paramKeys maps each parameter to its key part.
var paramKeys = map[telemetry.Param]uint64{
	telemetry.PH: kPH, telemetry.DO: kDO, telemetry.BOD: kBOD, telemetry.FC: kFC,
	telemetry.TDS: kTDS, telemetry.Temp: kTemp, telemetry.Turbidity: kTurbidity,
	telemetry.Conductivity: kConductivity, telemetry.Chla: kChla,
	telemetry.WaterLevel: kWaterLevel, telemetry.Discharge: kDischarge,
	telemetry.Rainfall: kRainfall, telemetry.AirTemp: kAirTemp,
}

// Model is the river at one station. It is immutable and safe for concurrent use.
type Model struct {
	station Station
	seed    int64
	base    uint64
	plumes  []Plume
}

// New returns the model of a station's river for a seed. Two models with the same station
// id, profile and seed produce identical values. The pollution events of the modelled
// stations upstream on the same river (Stations, RiverKm) reach it too, as plumes.
func New(st Station, seed int64) *Model {
	return &Model{station: st, seed: seed, base: key(uint64(seed), strKey(st.ID))}
}

// WithPlumes returns a copy of m whose river also carries ps (those on other rivers, or
// entering below the station, never reach it).
func (m *Model) WithPlumes(ps ...Plume) *Model {
	c := *m
	c.plumes = append(slices.Clone(m.plumes), ps...)
	return &c
}

// Station returns the station being modelled.
func (m *Model) Station() Station { return m.station }

// Supported reports whether the model produces values for p. Every canonical parameter is
// supported, the hydrological context (water level, discharge, rainfall) included.
func Supported(p telemetry.Param) bool {
	_, ok := paramKeys[p]
	return ok
}

// drivers are the shared causes behind every parameter at one instant.
type drivers struct {
	doy     float64 // fractional day of the year in IST, 0 = 1 January 00:00
	monsoon float64 // 0 in the dry season … 1 at the height of the south-west monsoon
	diurnal float64 // +1 at 15:00 IST, −1 at 03:00 IST
	flow    float64 // slow flow anomaly, about N(0,1); positive = more water than usual
	event   float64 // 0 … 1: how much of a pollution event's full effect applies now
	temp    float64 // water temperature, degC (DO depends on it)
}

func (m *Model) drivers(t time.Time) drivers {
	local := t.In(IST)
	hour := float64(local.Hour()) + float64(local.Minute())/60 +
		(float64(local.Second())+float64(local.Nanosecond())/1e9)/3600
	d := drivers{
		doy:     float64(local.YearDay()-1) + hour/24,
		diurnal: math.Cos(2 * math.Pi * (hour - 15) / 24),
	}
	d.monsoon = monsoon(d.doy)
	// Monsoon flow varies more: spates after heavy rain in the ghats.
	d.flow = smooth(key(m.base, kFlow), t, 36*time.Hour) * (1 + d.monsoon)
	// A discharge into a river in spate is diluted: half the effect at the monsoon's height.
	d.event = m.eventIntensity(t) * (1 - 0.5*d.monsoon)

	p := m.station.Profile
	d.temp = p.Temp +
		p.TempAnnualAmp*annual(d.doy) -
		p.TempMonsoonDip*d.monsoon +
		p.TempDiurnalAmp*d.diurnal +
		0.35*smooth(key(m.base, kTemp), t, 48*time.Hour)
	return d
}

// monsoon is the intensity of the south-west monsoon by day of the year: onset over
// Maharashtra in early June, full from July to mid-September, withdrawn by mid-October.
func monsoon(doy float64) float64 {
	const onset, full, waning, over = 152, 182, 258, 288 // 1 Jun, 1 Jul, 15 Sep, 15 Oct
	switch {
	case doy < onset || doy >= over:
		return 0
	case doy < full:
		return smoothstep((doy - onset) / (full - onset))
	case doy < waning:
		return 1
	default:
		return 1 - smoothstep((doy-waning)/(over-waning))
	}
}

// annual is the dry-weather annual temperature cycle of a Deccan river, −1 … +1: coolest in
// early January, warmest in early May, a slow decline through the rest of the year (the
// monsoon's cooling comes on top).
func annual(doy float64) float64 {
	const coolest, warmest = 4, 124 // 5 January, 5 May
	switch {
	case doy < coolest:
		doy += 365
		fallthrough
	case doy >= warmest:
		return math.Cos(math.Pi * (doy - warmest) / (365 + coolest - warmest))
	default:
		return -math.Cos(math.Pi * (doy - coolest) / (warmest - coolest))
	}
}

func smoothstep(x float64) float64 { return x * x * (3 - 2*x) }

// Value returns the river's value of p at t, in p's canonical unit, including natural
// short-term fluctuation. It is NaN for a parameter the model does not support.
func (m *Model) Value(p telemetry.Param, t time.Time) float64 {
	pk, ok := paramKeys[p]
	if !ok {
		return math.NaN()
	}
	d := m.drivers(t)
	pr := m.station.Profile
	noise := gauss(key(m.base, pk, kNoise, instant(t)))
	slow := func(period time.Duration) float64 { return smooth(key(m.base, pk), t, period) }
	// dilution scales what the river carries in solution: less in the monsoon and in spates.
	dilution := (1 - (1-pr.MonsoonDilution)*d.monsoon) * math.Exp(-0.08*d.flow)

	var v float64
	switch p {
	case telemetry.Temp:
		v = d.temp + 0.04*noise
	case telemetry.PH:
		// Photosynthesis consumes CO2 in the afternoon (pH up); rain water and decomposing
		// sewage are more acidic.
		v = pr.PH - 0.2*d.monsoon + pr.PHDiurnalAmp*d.diurnal + 0.06*slow(36*time.Hour) -
			0.35*d.event + 0.015*noise
	case telemetry.DO:
		mean := pr.DO + pr.DOMonsoonRise*d.monsoon + 0.3*slow(36*time.Hour) + 0.15*d.flow
		// Turbid monsoon water lets less light in: a smaller photosynthetic swing.
		swing := pr.DODiurnalAmp * (1 - 0.5*d.monsoon) * d.diurnal
		v = (mean+swing)*(1-0.6*d.event) + 0.05*noise
		// Supersaturation beyond about 135 % does not persist in a river.
		v = math.Min(v, 1.35*doSaturation(d.temp))
		v = math.Max(v, 0.05)
	case telemetry.BOD:
		v = pr.BOD * math.Pow(dilution, 0.7) * math.Exp(0.15*slow(30*time.Hour)) *
			(1 + 2*d.event) * (1 + 0.03*noise)
	case telemetry.FC:
		v = pr.FC * math.Pow(10, pr.MonsoonFCLog10*d.monsoon+0.22*slow(24*time.Hour)) *
			(1 + 15*d.event) * math.Exp(0.1*noise)
	case telemetry.Conductivity, telemetry.TDS:
		// TDS and conductivity share one driver (they measure the same ions); each has its
		// own measurement noise.
		ec := pr.Conductivity * dilution * math.Exp(0.05*smooth(key(m.base, kConductivity), t, 48*time.Hour)) *
			(1 + 0.3*d.event)
		if p == telemetry.TDS {
			v = ec * pr.TDSRatio * (1 + 0.01*noise)
		} else {
			v = ec * (1 + 0.008*noise)
		}
	case telemetry.Turbidity:
		v = pr.Turbidity * (1 + (pr.MonsoonTurbidity-1)*d.monsoon) *
			math.Exp(0.25*d.flow+0.2*slow(24*time.Hour)) * (1 + 1.5*d.event) * (1 + 0.03*noise)
	case telemetry.Chla:
		// Algae bloom in the warm, slow, nutrient-rich dry season and are flushed out by the
		// monsoon.
		v = pr.Chla * (1 - 0.6*d.monsoon) * math.Exp(0.3*slow(72*time.Hour)) * (1 + 0.05*noise)
	case telemetry.Discharge:
		v = m.discharge(d) * (1 + 0.01*noise)
	case telemetry.WaterLevel:
		// A power-law rating curve (stage grows with about the 0.4th power of discharge,
		// as for a natural channel): about 1 m of water at a dry-season flow of 10 m3/s,
		// 6 m in a flood a hundred times larger.
		v = pr.GaugeZero + 0.4*math.Pow(m.discharge(d), 0.4) + 0.005*noise
	case telemetry.Rainfall:
		v = m.rainfall(t)
	case telemetry.AirTemp:
		// Air swings more than water, over the day and the year; monsoon clouds damp both
		// and cool the afternoons.
		v = pr.Temp + 1 + 2*pr.TempAnnualAmp*annual(d.doy) - 2.5*d.monsoon +
			5.5*(1-0.5*d.monsoon)*d.diurnal + 1.2*slow(48*time.Hour) + 0.1*noise
	}
	info, _ := telemetry.Info(p)
	return math.Min(math.Max(v, info.Plausible.Min), info.Plausible.Max)
}

// discharge is the river's flow without measurement noise, m3/s.
func (m *Model) discharge(d drivers) float64 {
	pr := m.station.Profile
	return pr.Discharge * (1 + (pr.MonsoonDischarge-1)*d.monsoon) * math.Exp(0.6*d.flow)
}

// rainfall is the rain of the IST day containing t, mm: a wet day comes with a probability
// that grows from 4 % in the dry season to 84 % at the monsoon's height, and brings an
// exponentially distributed amount whose mean makes the monsoon's average day MonsoonRain.
func (m *Model) rainfall(t time.Time) float64 {
	local := t.In(IST)
	day := time.Date(local.Year(), local.Month(), local.Day(), 12, 0, 0, 0, IST)
	mon := monsoon(float64(day.YearDay() - 1))
	k := key(m.base, kRainfall, uint64(floorDiv(day.Unix(), 86400)))
	wet := 0.04 + 0.8*mon
	if unit(k) >= wet {
		return 0
	}
	const dryShower = 5 // mm, a pre-monsoon thunderstorm
	meanWet := dryShower + (m.station.Profile.MonsoonRain/0.84-dryShower)*mon
	return math.Round(-meanWet*math.Log(1-unit(k^1))*10) / 10
}

// doSaturation is the dissolved oxygen concentration of air-saturated fresh water at 1 atm,
// mg/L (Benson & Krause 1984, APHA Standard Methods 4500-O).
func doSaturation(tempC float64) float64 {
	tk := tempC + 273.15
	return math.Exp(-139.34411 + 1.575701e5/tk - 6.642308e7/(tk*tk) +
		1.243800e10/(tk*tk*tk) - 8.621949e11/(tk*tk*tk*tk))
}

// EventParams are the parameters a pollution event changes (see Value): DO and pH fall;
// BOD, fecal coliform, turbidity, conductivity and TDS rise.
func EventParams() []telemetry.Param {
	return []telemetry.Param{telemetry.DO, telemetry.PH, telemetry.BOD, telemetry.FC,
		telemetry.Turbidity, telemetry.Conductivity, telemetry.TDS}
}

// Event is a pollution event: untreated sewage or an industrial discharge that starts, holds
// for hours and washes out over a few hours after it stops. While it lasts DO and pH drop and
// BOD, fecal coliform, turbidity and conductivity rise.
type Event struct {
	Start, End time.Time // the discharge itself
	Severity   float64   // 0–1: the share of the full effect while the discharge lasts
}

const (
	eventSlot  = 24 * time.Hour   // at most one event starts per slot
	eventRamp  = 30 * time.Minute // time to full effect after the start
	eventDecay = 90 * time.Minute // e-folding time of the wash-out after the end
	eventTail  = 8 * time.Hour    // after this the wash-out counts as over
)

// event returns the event of slot n, if there is one.
func (m *Model) event(n int64) (Event, bool) {
	rate := m.station.Profile.EventsPerMonth / 30.44
	k := key(m.base, kEvent, uint64(n))
	if unit(k) >= rate {
		return Event{}, false
	}
	slotStart := time.Unix(0, n*int64(eventSlot)).UTC()
	start := slotStart.Add(time.Duration(unit(k^1) * float64(eventSlot))).Truncate(time.Minute)
	length := 2*time.Hour + time.Duration(unit(k^2)*float64(8*time.Hour)).Truncate(time.Minute)
	return Event{Start: start, End: start.Add(length), Severity: 0.4 + 0.6*unit(k^3)}, true
}

// intensity is the event's effect at t, 0–1.
func (e Event) intensity(t time.Time) float64 {
	switch {
	case t.Before(e.Start):
		return 0
	case !t.After(e.End):
		return e.Severity * math.Min(1, float64(t.Sub(e.Start))/float64(eventRamp))
	case t.Sub(e.End) > eventTail:
		return 0
	default:
		// The wash-out starts from the level reached at End (a short event may not have
		// ramped up fully).
		peak := e.Severity * math.Min(1, float64(e.End.Sub(e.Start))/float64(eventRamp))
		return peak * math.Exp(-float64(t.Sub(e.End))/float64(eventDecay))
	}
}

// eventIntensity is the strongest effect of any event at t: the station's own discharges
// and the plumes passing it. An event lasts at most 10 h plus its tail, so only the
// current and the previous slot of the station's own can reach t.
func (m *Model) eventIntensity(t time.Time) float64 {
	n := floorDiv(t.UnixNano(), int64(eventSlot))
	var best float64
	for _, s := range []int64{n - 1, n} {
		if e, ok := m.event(s); ok {
			best = math.Max(best, e.intensity(t))
		}
	}
	for _, in := range m.passages(t.Add(-maxEventSpan), t.Add(time.Nanosecond)) {
		best = math.Max(best, in.Event.intensity(t))
	}
	return best
}

// maxEventSpan is the longest an event can affect a river at one place: the longest
// discharge and its wash-out.
const maxEventSpan = 10*time.Hour + eventTail

// Events returns the pollution events whose discharge overlaps [from, to), in time order.
func (m *Model) Events(from, to time.Time) []Event {
	var out []Event
	first := floorDiv(from.UnixNano(), int64(eventSlot)) - 1
	last := floorDiv(to.UnixNano(), int64(eventSlot))
	for n := first; n <= last; n++ {
		if e, ok := m.event(n); ok && e.End.After(from) && e.Start.Before(to) {
			out = append(out, e)
		}
	}
	return out
}
