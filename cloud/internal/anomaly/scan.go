package anomaly

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
)

// Kind is the shape of a deviation at one station.
type Kind string

// The kinds. Leigh et al. (2019) rank sudden isolated spikes and level shifts first among
// the anomalies of in-situ water-quality sensors, and list drift and runs of constant
// values among the rest; a deviation is what is left: a change that comes and goes.
const (
	// KindDeviation: the hourly values leave their baseline and come back (or have not
	// yet), too briefly or too irregularly to be one of the shapes below. A pollution
	// event passing a station looks like this.
	KindDeviation Kind = "deviation"
	// KindLevelShift: a step away from the baseline that holds for half a day or more: a
	// probe knocked or recalibrated, or a real change of the water.
	KindLevelShift Kind = "level_shift"
	// KindDrift: a departure that grows steadily with time, as a fouling membrane or a
	// creeping reference electrode gives.
	KindDrift Kind = "drift"
	// KindStuck: the same reading again and again for longer than this sensor's own
	// history makes believable.
	KindStuck Kind = "stuck"
	// KindSpike: single readings far from their neighbours (an episode of this kind is a
	// cluster of them).
	KindSpike Kind = "spike"
)

// Series is one station's readings of one parameter, in any order. Pass good and suspect
// readings: the agent grades spikes and flatlines suspect, and they are this package's
// evidence. Bad readings (outside the physical range, probe errors) are the agent's own
// sensor-fault alerts and only blur a baseline.
type Series struct {
	Station string
	// Param is a canonical parameter or "wqi"; it chooses the scale (hourly.TransformFor).
	Param  string
	Points []hourly.Point
	// Hourly are values of whole hours for the hours Points does not cover: the weeks of
	// history before the readings, as an hourly rollup keeps them, so that a caller need
	// not load every reading of every baseline day. They make baselines and are judged as
	// hours like those of readings; the checks on single readings (spikes, stuck values)
	// see Points only. An hour that Points covers ignores its Hourly value.
	Hourly []HourValue
}

// HourValue is one hour of a series: the start of the hour, the mean of its readings and
// how many there were.
type HourValue struct {
	Time  time.Time
	Value float64
	Count int
}

// Evidence is one hour as the detector saw it.
type Evidence struct {
	Time     time.Time `json:"time"`     // start of the hour (UTC)
	Value    float64   `json:"value"`    // the hour's median reading
	Baseline float64   `json:"baseline"` // the median of this hour of the day over the baseline days
	// Low and High bound the normal range: the baseline ± 3 robust standard deviations
	// (on the parameter's scale, so asymmetric for counts).
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
	Score float64 `json:"score"` // robust z: (value − baseline) / robust sd
}

// Episode is a stretch of time in which one station's parameter left its baseline.
type Episode struct {
	Station string    `json:"station"`
	Param   string    `json:"param"`
	Kind    Kind      `json:"kind"`
	Start   time.Time `json:"start"` // start of the first hour
	End     time.Time `json:"end"`   // end of the last hour
	// Ongoing is true when the episode lasts to the end of the data.
	Ongoing bool `json:"ongoing"`
	// Sign is +1 above the baseline, −1 below, 0 for spikes both ways.
	Sign int `json:"sign"`
	// Peak is the hour (for spikes: the reading) furthest from the baseline.
	Peak Evidence `json:"peak"`
	// Hours are the episode's hours, at most maxEvidence of them (the first and last
	// halves when longer).
	Hours []Evidence `json:"hours"`
	// Spikes counts the readings of a spike cluster.
	Spikes int `json:"spikes,omitempty"`
}

// Flag is one reading the detector flags.
type Flag struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
	// Score is the reading's robust z against its baseline (for a spike: against its
	// neighbours, in units of the series' reading-to-reading noise).
	Score float64 `json:"score"`
	Kind  Kind    `json:"kind"`
}

// Scan is what the detector found in one series.
type Scan struct {
	Station  string
	Param    string
	Episodes []Episode // by start
	Flags    []Flag    // by time
	start    time.Time // first hour of judged
	judged   []bool    // hours that had a value and a baseline to judge it by
}

// Judged counts the hours in [from, to) that had a value and a baseline, and the hours in
// that span.
func (s Scan) Judged(from, to time.Time) (judged, hours int) {
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		hours++
		if i := int(t.Sub(s.start) / time.Hour); t.Sub(s.start) >= 0 && i < len(s.judged) && s.judged[i] {
			judged++
		}
	}
	return judged, hours
}

// End is the end of the last hour with data.
func (s Scan) End() time.Time { return s.start.Add(time.Duration(len(s.judged)) * time.Hour) }

// minScales are the smallest spreads each parameter is judged with, on its scale
// (hourly.TransformFor: natural log for fc, turbidity, bod, chla): a fifth of the
// smallest change worth an operator's attention, so that at the threshold of 5 an hour
// must be off by at least that much. A river whose hourly values are very smooth (TDS and
// conductivity change by a percent an hour) would otherwise turn the last percent of its
// own predictability into alerts. Field probes resolve about these steps too (pH 0.01–0.05,
// DO 0.1 mg/L, EC 1 % of reading).
var minScales = map[string]float64{
	"ph": 0.05, "do": 0.1, "temp": 0.2, "tds": 5, "conductivity": 10,
	"fc": 0.1, "turbidity": 0.05, "bod": 0.05, "chla": 0.05, "wqi": 1,
}

// maxEvidence bounds the hours an episode carries.
const maxEvidence = 48

// stuckOdds: a run of equal readings is stuck when, with this sensor's own rate of
// repeated readings p, p^(run−1) is below it: about a one-in-ten-thousand coincidence.
const stuckOdds = 1e-4

// withHourly returns the points that make s's hourly series: its readings, and its
// Hourly values of the hours no reading covers, with their counts by hour.
func withHourly(s Series) ([]hourly.Point, map[time.Time]int) {
	if len(s.Hourly) == 0 {
		return s.Points, nil
	}
	covered := make(map[time.Time]bool, len(s.Points)/4+1)
	for _, p := range s.Points {
		covered[p.Time.UTC().Truncate(time.Hour)] = true
	}
	all := slices.Clip(s.Points)
	counts := make(map[time.Time]int, len(s.Hourly))
	for _, h := range s.Hourly {
		t := h.Time.UTC().Truncate(time.Hour)
		if covered[t] {
			continue
		}
		all = append(all, hourly.Point{Time: t, Value: h.Value})
		counts[t] = max(h.Count, 1)
	}
	return all, counts
}

// ScanSeries runs the single-station detector over s (see the package comment).
func ScanSeries(s Series, opts Options) Scan {
	opts = opts.withDefaults()
	out := Scan{Station: s.Station, Param: s.Param}
	tr := hourly.TransformFor(s.Param)
	all, counts := withHourly(s)
	// Outliers are what we look for: no filter.
	hs, _ := hourly.Regularise(all, hourly.Options{MaxHours: opts.MaxHours, OutlierZ: -1})
	n := hs.Len()
	if n == 0 {
		return out
	}
	out.start = hs.Start
	out.judged = make([]bool, n)
	end := hs.Start.Add(time.Duration(n) * time.Hour)
	pts := make([]hourly.Point, 0, len(s.Points))
	for _, p := range s.Points {
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) && !p.Time.Before(hs.Start) && p.Time.Before(end) {
			pts = append(pts, p)
		}
	}
	slices.SortStableFunc(pts, func(a, b hourly.Point) int { return a.Time.Compare(b.Time) })
	x := make([]float64, len(pts)) // transformed readings
	hourOf := make([]int, len(pts))
	perHour := make([]int, n)
	for i, p := range pts {
		x[i] = tr.Apply(p.Value)
		hourOf[i] = int(p.Time.Sub(hs.Start) / time.Hour)
		perHour[hourOf[i]]++
	}
	for t, c := range counts {
		if i := int(t.Sub(hs.Start) / time.Hour); t.Compare(hs.Start) >= 0 && i < n {
			perHour[i] = c
		}
	}
	noise := hourly.NoiseScale(x)

	d := detector{opts: opts, tr: tr, n: n, start: hs.Start, y: tr.ApplyAll(hs.Values), noise: noise, perHour: perHour,
		minScale: minScales[s.Param]}
	d.ref = slices.Clone(d.y)
	stuck := stuckRuns(pts, opts.StuckMin)
	for _, r := range stuck {
		for h := hourOf[r.first]; h <= hourOf[r.last]; h++ {
			d.ref[h] = math.NaN() // a stuck sensor says nothing about the river
		}
	}
	zEpisodes := d.scan()
	copy(out.judged, d.judged)
	// A spike is judged against the reading-to-reading noise, but never against less than
	// the smallest change worth attention: a probe that repeats one value (noise near
	// zero, as a fresh series of a coarse probe has) must not turn its next
	// last-digit step into a spike of score 1e13.
	spikes := spikeFlags(pts, x, max(noise, d.minScale), opts.SpikeZ)

	// Spike readings in an hour make a short z-episode of that hour when readings are
	// sparse; the spike test has explained it.
	isSpike := make(map[int]bool, len(spikes))
	for _, sp := range spikes {
		isSpike[sp.index] = true
	}
	var eps []episode
	for _, e := range zEpisodes {
		if e.last-e.first < 2 && spikeShare(e, hourOf, isSpike) >= 0.5 {
			continue
		}
		eps = append(eps, e)
	}
	eps = d.mergeStuck(eps, stuck, pts, hourOf)
	for _, e := range eps {
		out.Episodes = append(out.Episodes, d.episode(s, e))
	}
	out.Episodes = append(out.Episodes, spikeClusters(s, spikes, pts, tr, noise, opts)...)
	slices.SortStableFunc(out.Episodes, func(a, b Episode) int { return a.Start.Compare(b.Start) })
	out.Flags = d.flags(pts, x, hourOf, eps, spikes)
	return out
}

// detector holds one series' hourly state.
type detector struct {
	opts  Options
	tr    hourly.Transform
	n     int
	start time.Time
	y     []float64 // hourly medians, transformed
	ref   []float64 // y without the hours found anomalous: what baselines are made of
	noise float64   // reading-to-reading noise, transformed scale
	// minScale is the smallest spread the parameter is judged with (minScales).
	minScale float64
	perHour  []int
	base     []float64 // each hour's baseline: the median of its hour of the day
	med      []float64 // each hour's expected value in the fast channel
	scale    []float64 // robust sd of the fast channel's errors
	z        []float64
	// slowScale and slowZ are the slow channel's (errors against base alone).
	slowScale []float64
	slowZ     []float64
	judged    []bool
}

// episode is an episode by hour index, before it is described.
type episode struct {
	first, last int // hours
	sign        int
	peak        int // hour of the largest |z|
	kind        Kind
	ongoing     bool
	slow        bool      // found by the slow channel
	stuckFrom   time.Time // for a stuck episode, its readings' span
	stuckTo     time.Time
}

// baselineValues returns the baseline values of hour j: the same hour of the day on the
// BaselineDays days before, those not left out.
func (d *detector) baselineValues(j int, buf []float64) []float64 {
	buf = buf[:0]
	for k := 1; k <= d.opts.BaselineDays; k++ {
		if i := j - k*period; i >= 0 && !math.IsNaN(d.ref[i]) {
			buf = append(buf, d.ref[i])
		}
	}
	return buf
}

const period = 24

// spreadWindow: hours of the day either side whose past errors are pooled for an hour's
// spread. The day-to-day variation of a river hardly differs between neighbouring hours,
// and seven hours × seven days make a steadier estimate than one hour's seven.
const spreadWindow = 3

// minErrors: past errors an hour's spread needs in the fast channel; with fewer the hour
// is not judged. minSlowErrors: the same in the slow channel, which needs a week of them
// (seven hours of the day on seven days) to have seen how far the river wanders by itself.
const (
	minErrors     = 14
	minSlowErrors = 7 * (2*spreadWindow + 1)
)

// tracker follows one channel's episodes hour by hour: an hour at least openAt from its
// expected value opens one; hours on the same side at least contAt away extend it, with
// up to maxGap quieter or missing hours tolerated.
type tracker struct {
	openAt, contAt float64
	maxGap         int
	keep           func(e episode, peak float64) bool
	z              []float64

	open *episode
	gap  int
	out  []episode
}

func (t *tracker) step(i int, judged bool) {
	z := t.z[i]
	switch {
	case t.open == nil && judged && math.Abs(z) >= t.openAt:
		t.open = &episode{first: i, last: i, sign: sign(z), peak: i}
	case t.open != nil && judged && sign(z) == t.open.sign && math.Abs(z) >= t.contAt:
		t.open.last, t.gap = i, 0
		if math.Abs(z) > math.Abs(t.z[t.open.peak]) {
			t.open.peak = i
		}
	case t.open != nil:
		t.gap++
		if t.gap > t.maxGap {
			t.close(false)
		}
	}
}

func (t *tracker) close(ongoing bool) {
	if t.open == nil {
		return
	}
	e := *t.open
	e.ongoing = ongoing
	if t.keep(e, math.Abs(t.z[e.peak])) {
		t.out = append(t.out, e)
	}
	t.open, t.gap = nil, 0
}

// inOpen reports whether hour i extended the open episode, and how far into it it is.
func (t *tracker) inOpen(i int) (bool, int) {
	if t.open == nil || t.open.last != i {
		return false, 0
	}
	return true, i - t.open.first
}

// fastShareOfSlow: the fast channel's spread is never taken below this share of the slow
// channel's. A sudden change must also be large against how far the river strays from its
// baseline from day to day — at the threshold of 5, one such ordinary departure — or a
// parameter whose hours are very predictable (a smooth wander followed closely by the
// offset's trend) turns the bends of its own wandering into alerts. A pollution event
// moves DO, BOD or coliform by several ordinary departures at once.
const fastShareOfSlow = 0.2

// slowMaskHours: how long a slow episode's hours stay out of the baseline. After three
// days a river that has really changed is let become the norm (the seven-day median
// follows in another four); a drift outgrows any baseline.
const slowMaskHours = 72

// scan computes each hour's expected values and scores and finds the episodes, in two
// channels.
//
// The fast channel compares each hour with its baseline — the median of the same hour of
// the day on the BaselineDays days before — plus the river's recent offset from its
// baselines, followed by a Theil–Sen line through the offsets of the last LevelHours
// ordinary hours. The offset lets a river wander smoothly (flow, weather) without each
// wander becoming an episode; what stands out is a change faster than the river's own
// trend, which is what pollution events and sudden sensor faults are: a one-step
// prediction with an interval, as the regression-based detectors of Leigh et al. (2019),
// made robust. An hour at least Threshold robust sd off opens an episode, hours beyond
// Continue on the same side extend it (one quiet or missing hour tolerated); it is kept
// when it lasts MinHours or peaks beyond twice the threshold. While it is young (its
// first MaskHours) the episode is measured against the river before it: the offset is
// frozen and its hours are left out of later baselines, offsets and spreads. After that
// the river's new state counts again, so a real change becomes the norm within hours
// instead of holding an episode open for days.
//
// The slow channel compares each hour with the baseline alone, so that what the offset
// follows — a slow drift of a fouling probe, a shift that stays — is still seen: hours
// beyond Threshold on one side for at least SlowHours, peaking beyond twice the
// threshold, make an episode (two quiet or missing hours tolerated), a drift or a level
// shift. It asks more than the fast channel because a river's own slow wandering is
// larger and rarer than its hour-to-hour noise, so a week of it says less about its
// tails; a drift outgrows any threshold, a day or two later. Its hours stay out of later
// baselines for slowMaskHours.
//
// Spreads are measured, not assumed: from the channel's own past errors over the hours
// within ±spreadWindow of the same time of day on the SpreadDays days before (anomalous
// hours left out), the larger of 1.4826·MAD and the upper quartile of the absolute errors
// divided by 1.1503 — both the standard deviation for Gaussian errors; the quartile
// notices the heavier tails a river's errors have, and still ignores what a quarter of
// odd hours do. A spread is never taken below the standard error of the hour's median
// reading, 1.2533·noise/√readings, nor the parameter's minScale, and the fast one is
// never below fastShareOfSlow of the slow one (once that is known). An hour is judged once
// its baseline has MinBaselineDays values and its spread minErrors errors: after about
// MinBaselineDays + 2 days of data.
func (d *detector) scan() []episode {
	n := d.n
	d.med = make([]float64, n)
	d.base = make([]float64, n)
	d.scale = make([]float64, n)
	d.slowScale = make([]float64, n)
	d.z = make([]float64, n)
	d.slowZ = make([]float64, n)
	d.judged = make([]bool, n)
	buf := make([]float64, 0, d.opts.BaselineDays)
	// errs and slowErrs are each hour's errors in both channels, NaN when unknown or left
	// out.
	errs, slowErrs := make([]float64, n), make([]float64, n)
	pool := make([]float64, 0, (2*spreadWindow+1)*d.opts.SpreadDays)
	spread := func(errs []float64, i, least int) float64 {
		pool = pool[:0]
		for k := 1; k <= d.opts.SpreadDays; k++ {
			for j := i - k*period - spreadWindow; j <= i-k*period+spreadWindow; j++ {
				if j >= 0 && !math.IsNaN(errs[j]) {
					pool = append(pool, math.Abs(errs[j]))
				}
			}
		}
		if len(pool) < least {
			return math.NaN()
		}
		floor := 1.2533 * d.noise / math.Sqrt(float64(max(d.perHour[i], 1)))
		floor = max(floor, d.minScale, 1e-9*(1+math.Abs(d.base[i])))
		q := hourly.Quantiles(pool, 0.5, 0.75)
		return max(1.4826*q[0], q[1]/1.1503, floor)
	}
	// offsets holds (hour, value − baseline) of the latest ordinary hours.
	type offset struct {
		hour int
		v    float64
	}
	var offsets []offset
	rh := make([]float64, 0, d.opts.LevelHours)
	rv := make([]float64, 0, d.opts.LevelHours)
	slopes := make([]float64, 0, d.opts.LevelHours*d.opts.LevelHours/2)
	var frozen float64 // the offset when the open fast episode began
	fast := &tracker{openAt: d.opts.Threshold, contAt: d.opts.Continue, maxGap: 1, z: d.z,
		keep: func(e episode, peak float64) bool {
			return e.last-e.first+1 >= d.opts.MinHours || peak >= 2*d.opts.Threshold
		}}
	slow := &tracker{openAt: d.opts.Threshold, contAt: d.opts.Threshold, maxGap: 2, z: d.slowZ,
		keep: func(e episode, peak float64) bool {
			return e.last-e.first+1 >= d.opts.SlowHours && peak >= 2*d.opts.Threshold
		}}
	for i := range n {
		d.base[i] = math.NaN()
		if vals := d.baselineValues(i, buf); len(vals) >= d.opts.MinBaselineDays {
			d.base[i] = hourly.Median(vals)
		}
		var level float64
		if fast.open != nil && i-fast.open.first < d.opts.MaskHours {
			level = frozen // a young episode is measured against the river before it
		} else {
			rh, rv = rh[:0], rv[:0]
			for k := len(offsets) - 1; k >= 0 && len(rv) < d.opts.LevelHours; k-- {
				if offsets[k].hour < i-3*d.opts.LevelHours {
					break // too old to say where the river is now
				}
				rh, rv = append(rh, float64(offsets[k].hour)), append(rv, offsets[k].v)
			}
			level = theilSen(rh, rv, float64(i), slopes)
		}
		d.med[i] = d.base[i] + level
		errs[i] = d.y[i] - d.med[i] // NaN unless both are known
		slowErrs[i] = d.y[i] - d.base[i]
		d.z[i], d.slowZ[i] = math.NaN(), math.NaN()
		if !math.IsNaN(errs[i]) {
			d.scale[i], d.slowScale[i] = spread(errs, i, minErrors), spread(slowErrs, i, minSlowErrors)
			if !math.IsNaN(d.slowScale[i]) {
				d.scale[i] = max(d.scale[i], fastShareOfSlow*d.slowScale[i])
			}
			if !math.IsNaN(d.scale[i]) {
				d.z[i] = errs[i] / d.scale[i]
				d.judged[i] = true
			}
			if !math.IsNaN(d.slowScale[i]) {
				d.slowZ[i] = slowErrs[i] / d.slowScale[i]
			}
		}
		wasOpen := fast.open != nil
		fast.step(i, d.judged[i])
		if !wasOpen && fast.open != nil {
			frozen = level
		}
		slow.step(i, !math.IsNaN(d.slowZ[i]))
		inFast, fastAge := fast.inOpen(i)
		inSlow, slowAge := slow.inOpen(i)
		switch {
		case inFast && fastAge < d.opts.MaskHours:
			d.ref[i], errs[i], slowErrs[i] = math.NaN(), math.NaN(), math.NaN()
		case inSlow && slowAge < slowMaskHours:
			d.ref[i], errs[i], slowErrs[i] = math.NaN(), math.NaN(), math.NaN()
			fallthrough
		case !math.IsNaN(d.y[i]) && !math.IsNaN(d.base[i]):
			offsets = append(offsets, offset{i, d.y[i] - d.base[i]})
		}
	}
	fast.close(true)
	slow.close(true)
	fast.out = d.mergeReturns(fast.out)
	for i := range fast.out {
		fast.out[i].kind = d.classify(fast.out[i], d.z, d.opts.MaskHours)
	}
	for i := range slow.out {
		e := &slow.out[i]
		e.slow = true
		if e.kind = d.classify(*e, d.slowZ, e.last-e.first+1); e.kind == KindDeviation {
			e.kind = KindLevelShift // a day or more on one side
		}
	}
	return mergeSlow(fast.out, slow.out)
}

// mergeReturns folds into an episode the departure the other way that follows it within
// LevelHours when the episode outlasted MaskHours: by then the expected value had taken on
// the episode's state, so the river's return to normal reads as a change the other way. It
// is the end of the same event, not a new one.
func (d *detector) mergeReturns(eps []episode) []episode {
	var out []episode
	for _, e := range eps {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			if e.sign == -prev.sign && prev.last-prev.first+1 >= d.opts.MaskHours && e.first-prev.last <= d.opts.LevelHours {
				prev.last, prev.ongoing = e.last, e.ongoing
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// mergeSlow lets each slow episode absorb the fast ones it overlaps: the same departure,
// whose onset the fast channel saw and whose persistence the slow one did.
func mergeSlow(fast, slow []episode) []episode {
	out := slices.Clone(slow)
	for _, f := range fast {
		absorbed := false
		for k := range out {
			s := &out[k]
			if f.last >= s.first && f.first <= s.last {
				s.first, s.last = min(s.first, f.first), max(s.last, f.last)
				s.ongoing = s.ongoing || f.ongoing
				absorbed = true
				break
			}
		}
		if !absorbed {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b episode) int { return cmp.Compare(a.first, b.first) })
	return out
}

// theilSen predicts the river's offset from its baselines at hour at from the recent
// offsets vs at hours hs: the Theil–Sen line (the median of the pairwise slopes, and the
// median intercept; Sen 1968, "Estimates of the regression coefficient based on
// Kendall's tau", JASA 63:1379–1389), robust to the odd wild hour, so that a river
// wandering smoothly is followed without lag. With fewer than three offsets it is their
// median, with none 0. The slope is limited to the spread of the offsets per LevelHours,
// so a few hours cannot extrapolate a wild line.
func theilSen(hs, vs []float64, at float64, buf []float64) float64 {
	switch len(vs) {
	case 0:
		return 0
	case 1, 2:
		return hourly.Median(slices.Clone(vs))
	}
	buf = buf[:0]
	for i := range hs {
		for j := i + 1; j < len(hs); j++ {
			if hs[i] != hs[j] {
				buf = append(buf, (vs[j]-vs[i])/(hs[j]-hs[i]))
			}
		}
	}
	slope := 0.0
	if len(buf) > 0 {
		slope = hourly.Median(buf)
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	span := slices.Max(hs) - slices.Min(hs) + 1
	if limit := (hi - lo) / span; math.Abs(slope) > limit {
		slope = math.Copysign(limit, slope)
	}
	buf = buf[:0]
	for i := range hs {
		buf = append(buf, vs[i]-slope*hs[i])
	}
	return hourly.Median(buf) + slope*at
}

func sign(z float64) int {
	if z < 0 {
		return -1
	}
	return 1
}

// classify names the shape of an episode from its scores z over its first fit hours. A
// drift grows: over DriftHours or more, the distance from the expected value (in robust
// sd, signed towards the episode's side) follows a rising line that explains most of its
// variance (R² ≥ 0.6) and ends at least twice as far out as it starts. Otherwise a stretch
// of LevelShiftHours or more is a level shift, and anything shorter a deviation.
func (d *detector) classify(e episode, z []float64, fit int) Kind {
	hours := e.last - e.first + 1
	if hours >= d.opts.DriftHours {
		fit = min(hours, fit)
		var xs, us []float64
		for i := e.first; i < e.first+fit; i++ {
			if !math.IsNaN(z[i]) {
				xs = append(xs, float64(i-e.first))
				us = append(us, float64(e.sign)*z[i])
			}
		}
		if a, b, r2 := lineFit(xs, us); len(xs) >= d.opts.DriftHours && b > 0 && r2 >= 0.6 &&
			a+b*float64(fit-1) >= 2*max(a, d.opts.Continue) {
			return KindDrift
		}
	}
	if hours >= d.opts.LevelShiftHours {
		return KindLevelShift
	}
	return KindDeviation
}

// lineFit is the least-squares line u = a + b·x and its R².
func lineFit(xs, us []float64) (a, b, r2 float64) {
	n := float64(len(xs))
	if n < 3 {
		return 0, 0, 0
	}
	var sx, su float64
	for i := range xs {
		sx += xs[i]
		su += us[i]
	}
	mx, mu := sx/n, su/n
	var sxx, sxu, suu float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxu += (xs[i] - mx) * (us[i] - mu)
		suu += (us[i] - mu) * (us[i] - mu)
	}
	if sxx == 0 || suu == 0 {
		return mu, 0, 0
	}
	b = sxu / sxx
	return mu - b*mx, b, sxu * sxu / (sxx * suu)
}

// run is a run of equal consecutive readings, by index into the sorted readings.
type run struct{ first, last int }

// stuckRuns finds runs of identical readings that last at least minDur and that this
// sensor's own rate of repeats p (over the readings before the run; ½ with fewer than 50)
// makes implausible: p^(length−1) < stuckOdds. A sensor that repeats itself nine times in
// ten (a coarse resolution on a calm river) is never called stuck.
func stuckRuns(pts []hourly.Point, minDur time.Duration) []run {
	var out []run
	repeats := 0 // equal consecutive pairs before i
	for i := 0; i < len(pts); {
		j := i
		for j+1 < len(pts) && pts[j+1].Value == pts[i].Value {
			j++
		}
		length := j - i + 1
		if length >= 4 && pts[j].Time.Sub(pts[i].Time) >= minDur {
			p := 0.5
			if i > 50 {
				p = float64(repeats) / float64(i-1)
			}
			p = min(max(p, 0.05), 1)
			if p <= 0.9 && math.Pow(p, float64(length-1)) < stuckOdds {
				out = append(out, run{i, j})
			}
		}
		repeats += length - 1
		i = j + 1
	}
	return out
}

// spike is a reading far from its neighbours.
type spike struct {
	index  int
	median float64 // of the neighbours, transformed
	score  float64
}

// spikeFlags finds readings more than spikeZ times the series' reading-to-reading noise
// from the median of the seven readings centred on them (a Hampel filter on the readings:
// a monotone rise or fall, however steep, keeps each reading at its window's median; a
// reading that jumps away and back does not).
func spikeFlags(pts []hourly.Point, x []float64, noise, spikeZ float64) []spike {
	if noise <= 0 || len(x) < 5 {
		return nil
	}
	var out []spike
	win := make([]float64, 0, 7)
	for i := range x {
		win = win[:0]
		for j := max(0, i-3); j <= min(len(x)-1, i+3); j++ {
			win = append(win, x[j])
		}
		if len(win) < 5 {
			continue
		}
		m := hourly.Median(win)
		if z := (x[i] - m) / noise; math.Abs(z) >= spikeZ {
			out = append(out, spike{index: i, median: m, score: z})
		}
	}
	return out
}

func spikeShare(e episode, hourOf []int, isSpike map[int]bool) float64 {
	var all, sp int
	for i, h := range hourOf {
		if h >= e.first && h <= e.last {
			all++
			if isSpike[i] {
				sp++
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(sp) / float64(all)
}

// mergeStuck makes every stuck run an episode, absorbing the z-episodes it overlaps (a
// frozen reading leaves the daily cycle behind, so it scores too).
func (d *detector) mergeStuck(eps []episode, stuck []run, pts []hourly.Point, hourOf []int) []episode {
	for _, r := range stuck {
		e := episode{first: hourOf[r.first], last: hourOf[r.last], kind: KindStuck, peak: -1,
			stuckFrom: pts[r.first].Time, stuckTo: pts[r.last].Time, ongoing: r.last == len(pts)-1}
		kept := eps[:0]
		for _, o := range eps {
			if o.last < e.first || o.first > e.last {
				kept = append(kept, o)
				continue
			}
			e.first, e.last = min(e.first, o.first), max(e.last, o.last)
			e.ongoing = e.ongoing || o.ongoing
		}
		eps = kept
		var sum float64
		for h := e.first; h <= e.last; h++ {
			if d.judged[h] {
				sum += d.z[h]
				if e.peak < 0 || math.Abs(d.z[h]) > math.Abs(d.z[e.peak]) {
					e.peak = h
				}
			}
		}
		if sum != 0 {
			e.sign = sign(sum)
		}
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b episode) int { return cmp.Compare(a.first, b.first) })
	return eps
}

// evidence describes hour i, as the fast channel saw it or (slow) the slow one.
func (d *detector) evidence(i int, slow bool) Evidence {
	m, sd, z := d.med[i], d.scale[i], d.z[i]
	if slow {
		m, sd, z = d.base[i], d.slowScale[i], d.slowZ[i]
	}
	return Evidence{Time: d.start.Add(time.Duration(i) * time.Hour), Value: d.tr.Invert(d.y[i]),
		Baseline: d.tr.Invert(m), Low: d.tr.Invert(m - 3*sd), High: d.tr.Invert(m + 3*sd), Score: z}
}

// episode describes e.
func (d *detector) episode(s Series, e episode) Episode {
	out := Episode{Station: s.Station, Param: s.Param, Kind: e.kind, Ongoing: e.ongoing, Sign: e.sign,
		Start: d.start.Add(time.Duration(e.first) * time.Hour),
		End:   d.start.Add(time.Duration(e.last+1) * time.Hour)}
	if e.kind == KindStuck {
		out.Start = minTime(out.Start, e.stuckFrom.Truncate(time.Hour))
		out.End = maxTime(out.End, e.stuckTo.Truncate(time.Hour).Add(time.Hour))
	}
	var hours []int
	for i := e.first; i <= e.last; i++ {
		if d.judged[i] {
			hours = append(hours, i)
		}
	}
	if len(hours) > maxEvidence {
		hours = append(hours[:maxEvidence/2], hours[len(hours)-maxEvidence/2:]...)
	}
	for _, i := range hours {
		out.Hours = append(out.Hours, d.evidence(i, e.slow))
	}
	if e.peak >= 0 && d.judged[e.peak] {
		out.Peak = d.evidence(e.peak, e.slow)
	}
	return out
}

// flags lists the readings of every episode that are themselves beyond Continue on the
// episode's side (every reading of a stuck run), with their own scores, and the spikes.
func (d *detector) flags(pts []hourly.Point, x []float64, hourOf []int, eps []episode, spikes []spike) []Flag {
	byIndex := map[int]Flag{}
	for _, e := range eps {
		for k, h := range hourOf {
			inside := h >= e.first && h <= e.last
			if e.kind == KindStuck {
				inside = !pts[k].Time.Before(e.stuckFrom) && !pts[k].Time.After(e.stuckTo) || inside
			}
			if !inside {
				continue
			}
			score := 0.0
			if d.judged[h] {
				m, sd := d.med[h], d.scale[h]
				if e.slow {
					m, sd = d.base[h], d.slowScale[h]
				}
				score = (x[k] - m) / sd
			}
			// A reading of a stuck run is the fault whatever its score; in the other
			// shapes a reading near its baseline is not anomalous for being in that hour.
			if e.kind != KindStuck && (math.Abs(score) < d.opts.Continue || sign(score) != e.sign) {
				continue
			}
			byIndex[k] = Flag{Time: pts[k].Time, Value: pts[k].Value, Score: score, Kind: e.kind}
		}
	}
	for _, sp := range spikes {
		byIndex[sp.index] = Flag{Time: pts[sp.index].Time, Value: pts[sp.index].Value, Score: sp.score, Kind: KindSpike}
	}
	idx := slices.Sorted(maps.Keys(byIndex))
	out := make([]Flag, 0, len(idx))
	for _, k := range idx {
		out = append(out, byIndex[k])
	}
	return out
}

// spikeClusters makes an episode of every MinSpikes or more spikes with less than a day
// between consecutive ones.
func spikeClusters(s Series, spikes []spike, pts []hourly.Point, tr hourly.Transform, noise float64, opts Options) []Episode {
	var out []Episode
	for i := 0; i < len(spikes); {
		j := i
		for j+1 < len(spikes) && pts[spikes[j+1].index].Time.Sub(pts[spikes[j].index].Time) < 24*time.Hour {
			j++
		}
		if j-i+1 >= opts.MinSpikes {
			peak := slices.MaxFunc(spikes[i:j+1], func(a, b spike) int {
				return cmp.Compare(math.Abs(a.score), math.Abs(b.score))
			})
			pp := pts[peak.index]
			first, last := pts[spikes[i].index].Time, pts[spikes[j].index].Time
			out = append(out, Episode{Station: s.Station, Param: s.Param, Kind: KindSpike,
				Start: first.Truncate(time.Hour), End: last.Truncate(time.Hour).Add(time.Hour),
				Peak: Evidence{Time: pp.Time, Value: pp.Value, Baseline: tr.Invert(peak.median),
					Low: tr.Invert(peak.median - 3*noise), High: tr.Invert(peak.median + 3*noise), Score: peak.score},
				Spikes: j - i + 1})
		}
		i = j + 1
	}
	return out
}
