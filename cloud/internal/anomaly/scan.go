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

// maxEvidence bounds the hours an episode carries.
const maxEvidence = 48

// stuckOdds: a run of equal readings is stuck when, with this sensor's own rate of
// repeated readings p, p^(run−1) is below it: about a one-in-ten-thousand coincidence.
const stuckOdds = 1e-4

// ScanSeries runs the single-station detector over s (see the package comment).
func ScanSeries(s Series, opts Options) Scan {
	opts = opts.withDefaults()
	out := Scan{Station: s.Station, Param: s.Param}
	tr := hourly.TransformFor(s.Param)
	// Outliers are what we look for: no filter.
	hs, _ := hourly.Regularise(s.Points, hourly.Options{MaxHours: opts.MaxHours, OutlierZ: -1})
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
	noise := hourly.NoiseScale(x)

	d := detector{opts: opts, tr: tr, n: n, start: hs.Start, y: tr.ApplyAll(hs.Values), noise: noise, perHour: perHour}
	d.ref = slices.Clone(d.y)
	stuck := stuckRuns(pts, opts.StuckMin)
	for _, r := range stuck {
		for h := hourOf[r.first]; h <= hourOf[r.last]; h++ {
			d.ref[h] = math.NaN() // a stuck sensor says nothing about the river
		}
	}
	zEpisodes := d.scan()
	copy(out.judged, d.judged)
	spikes := spikeFlags(pts, x, noise, opts.SpikeZ)

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
	opts    Options
	tr      hourly.Transform
	n       int
	start   time.Time
	y       []float64 // hourly medians, transformed
	ref     []float64 // y without the hours found anomalous: what baselines are made of
	noise   float64   // reading-to-reading noise, transformed scale
	perHour []int
	med     []float64 // baseline median of each hour
	scale   []float64 // robust sd of each hour
	z       []float64
	judged  []bool
}

// episode is an episode by hour index, before it is described.
type episode struct {
	first, last int // hours
	sign        int
	peak        int // hour of the largest |z|
	kind        Kind
	ongoing     bool
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

// minErrors: past errors an hour's spread needs; with fewer the hour is not judged.
const minErrors = 14

// scan computes each hour's expected value and score and finds the episodes: an hour at
// least Threshold robust sd from its expected value opens one; hours on the same side at
// least Continue away extend it, with one quieter or missing hour tolerated; it is kept
// when it lasts MinHours or peaks beyond twice the threshold.
//
// The expected value of hour i is its baseline — the median of the same hour of the day
// on the BaselineDays days before — plus the river's recent offset from its baselines:
// the median of (value − baseline) over the last LevelHours ordinary hours. The offset
// lets a river wander slowly (flow, weather) without every wander becoming an episode;
// what stands out is a change faster than the offset can follow, which is what pollution
// events and sensor faults are. A one-step prediction with an interval, as the
// regression-based detectors of Leigh et al. (2019), made robust.
//
// The spread is measured, not assumed: 1.4826 times the median absolute error of the same
// predictions in the past, over the hours within ±spreadWindow of the same time of day on
// the SpreadDays days before. It is never taken smaller than the standard error of the
// hour's own median reading, 1.2533·noise/√readings, so that sampling noise alone never
// scores. An hour is judged once its baseline has MinBaselineDays values and its spread
// minErrors errors: after about MinBaselineDays + 2 days of data.
//
// Hours in an episode teach nothing: they are left out of later baselines, offsets and
// spreads, so an event is measured against the river before it, and a drift or a shift
// lasting days does not become the norm.
func (d *detector) scan() []episode {
	n := d.n
	d.med = make([]float64, n)
	d.scale = make([]float64, n)
	d.z = make([]float64, n)
	d.judged = make([]bool, n)
	buf := make([]float64, 0, d.opts.BaselineDays)
	// errs[j] is hour j's prediction error, NaN when unknown or left out.
	errs := make([]float64, n)
	pool := make([]float64, 0, (2*spreadWindow+1)*d.opts.SpreadDays)
	// offsets holds (hour, value − baseline) of the latest ordinary hours.
	type offset struct {
		hour int
		v    float64
	}
	var offsets []offset
	recent := make([]float64, 0, d.opts.LevelHours)
	var (
		out  []episode
		open *episode
		gap  int
	)
	closeOpen := func(ongoing bool) {
		if open == nil {
			return
		}
		e := *open
		e.ongoing = ongoing
		if e.last-e.first+1 >= d.opts.MinHours || math.Abs(d.z[e.peak]) >= 2*d.opts.Threshold {
			out = append(out, e)
		}
		open, gap = nil, 0
	}
	for i := range n {
		base := math.NaN()
		if vals := d.baselineValues(i, buf); len(vals) >= d.opts.MinBaselineDays {
			base = hourly.Median(vals)
		}
		recent = recent[:0]
		for k := len(offsets) - 1; k >= 0 && len(recent) < d.opts.LevelHours; k-- {
			if offsets[k].hour < i-3*d.opts.LevelHours {
				break // too old to say where the river is now
			}
			recent = append(recent, offsets[k].v)
		}
		level := 0.0
		if len(recent) > 0 {
			level = hourly.Median(recent)
		}
		d.med[i] = base + level
		errs[i] = d.y[i] - d.med[i] // NaN unless both are known
		d.z[i] = math.NaN()
		if !math.IsNaN(errs[i]) {
			pool = pool[:0]
			for k := 1; k <= d.opts.SpreadDays; k++ {
				for j := i - k*period - spreadWindow; j <= i-k*period+spreadWindow; j++ {
					if j >= 0 && !math.IsNaN(errs[j]) {
						pool = append(pool, math.Abs(errs[j]))
					}
				}
			}
			if len(pool) >= minErrors {
				floor := 1.2533 * d.noise / math.Sqrt(float64(max(d.perHour[i], 1)))
				floor = max(floor, 1e-9*(1+math.Abs(d.med[i])))
				d.scale[i] = max(1.4826*hourly.Median(pool), floor)
				d.z[i] = errs[i] / d.scale[i]
				d.judged[i] = true
			}
		}
		z := d.z[i]
		switch {
		case open == nil && d.judged[i] && math.Abs(z) >= d.opts.Threshold:
			open = &episode{first: i, last: i, sign: sign(z), peak: i}
		case open != nil && d.judged[i] && sign(z) == open.sign && math.Abs(z) >= d.opts.Continue:
			open.last, gap = i, 0
			if math.Abs(z) > math.Abs(d.z[open.peak]) {
				open.peak = i
			}
		case open != nil:
			gap++
			if gap > 1 {
				closeOpen(false)
			}
		}
		switch {
		case open != nil && open.last == i:
			d.ref[i] = math.NaN()
			errs[i] = math.NaN()
		case !math.IsNaN(d.y[i]) && !math.IsNaN(base):
			offsets = append(offsets, offset{i, d.y[i] - base})
		}
	}
	closeOpen(true)
	for i := range out {
		out[i].kind = d.classify(out[i])
	}
	return out
}

func sign(z float64) int {
	if z < 0 {
		return -1
	}
	return 1
}

// classify names the shape of a z-episode. A drift grows: over DriftHours or more, the
// distance from the baseline (in robust sd, signed towards the episode's side) follows a
// rising line that explains most of its variance (R² ≥ 0.6) and ends at least twice as far
// out as it starts. Otherwise a stretch of LevelShiftHours or more is a level shift, and
// anything shorter a deviation.
func (d *detector) classify(e episode) Kind {
	hours := e.last - e.first + 1
	if hours >= d.opts.DriftHours {
		var xs, us []float64
		for i := e.first; i <= e.last; i++ {
			if !math.IsNaN(d.z[i]) {
				xs = append(xs, float64(i-e.first))
				us = append(us, float64(e.sign)*d.z[i])
			}
		}
		if a, b, r2 := lineFit(xs, us); len(xs) >= d.opts.DriftHours && b > 0 && r2 >= 0.6 &&
			a+b*float64(hours-1) >= 2*max(a, d.opts.Continue) {
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

// evidence describes hour i.
func (d *detector) evidence(i int) Evidence {
	m, sd := d.med[i], d.scale[i]
	return Evidence{Time: d.start.Add(time.Duration(i) * time.Hour), Value: d.tr.Invert(d.y[i]),
		Baseline: d.tr.Invert(m), Low: d.tr.Invert(m - 3*sd), High: d.tr.Invert(m + 3*sd), Score: d.z[i]}
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
		out.Hours = append(out.Hours, d.evidence(i))
	}
	if e.peak >= 0 && d.judged[e.peak] {
		out.Peak = d.evidence(e.peak)
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
				score = (x[k] - d.med[h]) / d.scale[h]
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
