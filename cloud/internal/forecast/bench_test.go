package forecast

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/cloud/internal/simhistory"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// quickEnv is "1" for the short run (make bench sets it with BENCH_QUICK).
const quickEnv = "PH_BENCH_QUICK"

func quick() bool { return os.Getenv(quickEnv) == "1" }

// skill accumulates out-of-sample errors of one series.
type skill struct {
	aeModel, aeNaive  float64
	pairs, in80, in95 int
}

// BenchmarkSkill measures the forecaster on data it has never seen: for every healthy
// series of a simulated history, forecasts are issued every 19 hours (so at every time
// of day in turn) over the last week (three days in the quick run), each from the
// readings before it only, and compared hour by hour with the hourly medians of what the
// simulator then reported. The peer is seasonal naive, the same hour of the day before,
// on the same hours. MASE is per series (errors in different units cannot be pooled),
// summarised by its geometric mean over the series, the AvgRelMAE of Davydenko & Fildes
// (2013, "Measuring forecasting accuracy: the case of judgmental adjustments to SKU-level
// demand forecasts", Int. J. Forecasting 29:510–522): ratios average geometrically, and
// one series' blow-up does not outweigh the rest (the arithmetic mean and the median are
// reported too). Coverage pools every forecast hour. Every reading counts as
// good (the series are of healthy probes; the agent would grade a pollution event's
// readings good too).
func BenchmarkSkill(b *testing.B) {
	idxs := simhistory.ForBenchmark(b)
	evalDays := 7
	if quick() {
		evalDays = 3
	}
	type series struct {
		name     string
		param    string
		readings []Reading
		actual   hourly.Series
		issues   []time.Time
	}
	var all []series
	for n, idx := range idxs {
		var issues []time.Time
		for t := idx.To.Add(-time.Duration(evalDays) * 24 * time.Hour); !t.After(idx.To.Add(-24 * time.Hour)); t = t.Add(19 * time.Hour) {
			issues = append(issues, t)
		}
		for _, s := range idx.Series {
			if idx.Faulty(s) {
				continue
			}
			pts, err := idx.Points(s)
			if err != nil {
				b.Fatal(err)
			}
			rs := make([]Reading, len(pts))
			for i, p := range pts {
				rs[i] = Reading{Time: p.Time, Value: p.Value, Quality: telemetry.Good}
			}
			actual, _ := hourly.Regularise(pts, hourly.Options{OutlierZ: -1, MaxHours: int(idx.To.Sub(idx.From)/time.Hour) + 1})
			all = append(all, series{name: fmt.Sprintf("%d:%s/%s", n+1, s.Station, s.Param), param: s.Param,
				readings: rs, actual: actual, issues: issues})
		}
	}
	at := func(s hourly.Series, t time.Time) float64 {
		i := int(t.Sub(s.Start) / time.Hour)
		if t.Before(s.Start) || i >= s.Len() {
			return math.NaN()
		}
		return s.Values[i]
	}
	var (
		per    map[string]*skill
		models map[string]int
	)
	for b.Loop() {
		per, models = map[string]*skill{}, map[string]int{}
		for _, s := range all {
			sk := &skill{}
			per[s.name] = sk
			for _, t := range s.issues {
				n, _ := slices.BinarySearchFunc(s.readings, t, func(r Reading, t time.Time) int { return r.Time.Compare(t) })
				res, err := Make(Input{Param: s.param, Readings: s.readings[:n], IssuedAt: t}, Options{})
				if err != nil {
					b.Fatalf("%s at %s: %v", s.name, t, err)
				}
				models[res.Forecast.Model]++
				for _, p := range res.Forecast.Points {
					a, naive := at(s.actual, p.Time), at(s.actual, p.Time.Add(-24*time.Hour))
					if math.IsNaN(a) || math.IsNaN(naive) {
						continue
					}
					sk.aeModel += math.Abs(a - p.Value)
					sk.aeNaive += math.Abs(a - naive)
					sk.pairs++
					if a >= p.Lo80 && a <= p.Hi80 {
						sk.in80++
					}
					if a >= p.Lo95 && a <= p.Hi95 {
						sk.in95++
					}
				}
			}
		}
	}
	var (
		mases             []float64
		pairs, in80, in95 int
		byParam           = map[string][]float64{}
	)
	names := make([]string, 0, len(per))
	for name := range per {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sk := per[name]
		if sk.pairs == 0 || sk.aeNaive == 0 {
			continue
		}
		m := sk.aeModel / sk.aeNaive
		mases = append(mases, m)
		param := name[strings.LastIndex(name, "/")+1:]
		byParam[param] = append(byParam[param], m)
		pairs += sk.pairs
		in80 += sk.in80
		in95 += sk.in95
		b.Logf("%-28s MASE %.3f  coverage80 %.2f  coverage95 %.2f  (%d hours)", name, m,
			float64(sk.in80)/float64(sk.pairs), float64(sk.in95)/float64(sk.pairs), sk.pairs)
	}
	if len(mases) == 0 {
		b.Fatal("no series could be scored")
	}
	params := make([]string, 0, len(byParam))
	for p := range byParam {
		params = append(params, p)
	}
	sort.Strings(params)
	for _, p := range params {
		b.Logf("%-13s mean MASE %.3f over %d stations", p, mean(byParam[p]), len(byParam[p]))
	}
	b.Logf("models chosen: %v; %d histories, %d issue times each", models, len(idxs), len(all[0].issues))
	logs := make([]float64, len(mases))
	for i, m := range mases {
		logs[i] = math.Log(m)
	}
	b.ReportMetric(math.Exp(mean(logs)), "mase")
	b.ReportMetric(mean(mases), "mase_mean")
	b.ReportMetric(hourly.Median(slices.Clone(mases)), "mase_median")
	b.ReportMetric(float64(in80)/float64(pairs), "coverage80")
	b.ReportMetric(float64(in95)/float64(pairs), "coverage95")
	b.ReportMetric(float64(len(mases)), "series")
	b.ReportMetric(float64(pairs), "hours")
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// roundParams are what a station measures (design §3, without chlorophyll-a, which comes
// from satellites).
var roundParams = []string{"ph", "do", "bod", "fc", "tds", "temp", "turbidity", "conductivity"}

// roundSeries is one synthetic series of the round: four weeks of hourly values (what the
// job reads from the hourly rollup), a daily cycle, a smooth wander and noise, shaped and
// scaled like the parameter.
func roundSeries(station, param int, end time.Time) []Reading {
	r := rand.New(rand.NewPCG(uint64(station), uint64(param)))
	mid := []float64{7.5, 5, 12, 3e4, 400, 26, 15, 600}[param]
	rel := []float64{0.02, 0.15, 0.2, 0.5, 0.05, 0.03, 0.3, 0.05}[param]
	hours := hourly.DefaultMaxHours
	knots := make([]float64, hours/36+2)
	for i := range knots {
		knots[i] = r.NormFloat64()
	}
	out := make([]Reading, hours)
	start := end.Add(-time.Duration(hours) * time.Hour)
	for i := range out {
		h := float64(i)
		k, f := math.Modf(h / 36)
		w := knots[int(k)] + (knots[int(k)+1]-knots[int(k)])*(1-math.Cos(math.Pi*f))/2
		v := mid * (1 + rel*(math.Sin(2*math.Pi*h/24)+0.5*w+0.2*r.NormFloat64()))
		out[i] = Reading{Time: start.Add(time.Duration(i) * time.Hour), Value: max(v, 0), Quality: telemetry.Good}
	}
	return out
}

// cpuTime is the CPU time the process has used so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRound times one forecast round of the job: every parameter of every station
// (1000 × 8, four weeks of hourly history each; the quick run does 125 stations and
// scales by 8), on as many goroutines as GOMAXPROCS. Loading from the database is not
// part of it. It reports the wall time and the CPU time; the CPU time divided by the
// cores is what the round takes with the machine to itself (the work is independent
// series, so it parallelises fully), which a machine shared with other work does not
// show in its wall time.
func BenchmarkRound(b *testing.B) {
	stations := 1000
	if quick() {
		stations = 125
	}
	workers := runtime.GOMAXPROCS(0)
	end := time.Date(2026, 1, 29, 0, 0, 0, 0, time.UTC)
	var (
		failed atomic.Int64
		wall   time.Duration
		cpu    time.Duration
	)
	for b.Loop() {
		start, cpu0 := time.Now(), cpuTime(b)
		jobs := make(chan [2]int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for j := range jobs {
					in := Input{Param: roundParams[j[1]], Readings: roundSeries(j[0], j[1], end), IssuedAt: end}
					if _, err := Make(in, Options{}); err != nil {
						failed.Add(1)
					}
				}
			})
		}
		for st := range stations {
			for p := range roundParams {
				jobs <- [2]int{st, p}
			}
		}
		close(jobs)
		wg.Wait()
		wall, cpu = time.Since(start), cpuTime(b)-cpu0
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d series had no forecast", n, stations*len(roundParams))
	}
	scale := 1000 / float64(stations)
	series := stations * len(roundParams)
	b.ReportMetric(wall.Seconds()*scale, "round_wall_s")
	b.ReportMetric(cpu.Seconds()*scale, "round_cpu_s")
	b.ReportMetric(cpu.Seconds()*scale/float64(workers), "round_s")
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(workers), "workers")
	b.Logf("%d series on %d goroutines: wall %s, CPU %s (%.2f ms of CPU a series)", series, workers,
		wall.Round(time.Millisecond), cpu.Round(time.Millisecond), cpu.Seconds()*1000/float64(series))
}
