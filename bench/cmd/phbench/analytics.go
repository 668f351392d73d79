package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/bench/internal/benchline"
)

// onlyAnalytics is the --only name of the forecast and detection comparisons.
const onlyAnalytics = "analytics"

// The analytics comparisons' names.
const (
	nameForecastMASE     = "forecast_mase_vs_seasonal_naive"
	nameForecastCoverage = "forecast_coverage80_distance"
	nameForecastRound    = "forecast_round_1000x8_vs_interval"
	nameDetectPrecision  = "detection_precision"
	nameDetectRecall     = "detection_recall"
	nameDetectPlume      = "detection_plume_both_stations"
	nameDetectDrift      = "detection_drift_suspect_sensor"
)

// The goals of the issue that asked for these, kept here with their reasons.
const (
	goalMASE         = 0.9  // clearly better than "the same hour yesterday"
	coverageTarget   = 0.80 // the 80 % interval's nominal coverage
	coverageAllowed  = 0.10 // within 0.70–0.90
	goalRoundShare   = 0.05 // of the forecast interval
	forecastInterval = 15 * time.Minute
	goalDetection    = 0.8
)

// scenarioFiles are the simulated stations: two on the Mula-Mutha with plumes and a
// drifting probe, three healthy ones alone on their rivers.
//
//go:embed scenarios/*.yaml
var scenarioFiles embed.FS

// analyticsOptions are the settings of the analytics comparisons.
type analyticsOptions struct {
	seeds string // simulator seeds, one history each
	days  int    // length of each history
}

func (a *analyticsOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&a.seeds, "analytics-seeds", "", "comma-separated simulator seeds, one history each, pooled (default 21 quick, 21,22,23 full)")
	fs.IntVar(&a.days, "analytics-days", 0, "days of simulated history (default 14 quick, 21 full)")
}

func (a *analyticsOptions) defaults(quick bool) {
	if a.seeds == "" {
		a.seeds = "21,22,23"
		if quick {
			a.seeds = "21"
		}
	}
	if a.days == 0 {
		a.days = 21
		if quick {
			a.days = 14
		}
	}
}

func (a *analyticsOptions) validate() []error {
	var errs []error
	if _, err := a.seedList(); err != nil {
		errs = append(errs, err)
	}
	// The scenarios' plume and fault come after nine and eleven and a half days, and
	// the slow detector needs ten days of history.
	if a.days < 14 || a.days > 60 {
		errs = append(errs, fmt.Errorf("--analytics-days %d must be 14..60", a.days))
	}
	return errs
}

func (a *analyticsOptions) seedList() ([]int64, error) {
	var out []int64
	for s := range strings.SplitSeq(a.seeds, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--analytics-seeds: %q is not a number", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// historyStart is the first instant of every simulated history: the dry season, when a
// discharge shows clearly.
var historyStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var seedLine = regexp.MustCompile(`(?m)^seed: \d+$`)

// analytics simulates the histories, runs the Go benchmarks of the forecaster and the
// detector on them and makes their BENCH lines.
func (b *bench) analytics(ctx context.Context) {
	o := b.opts
	a := o.analytics
	seeds, _ := a.seedList() // validated
	b.printf("\n== analytics: forecast skill, anomaly detection, the forecast round\n")
	b.printf("load: %s history of 5 simulated stations (MH-PUNE-001 and -002 on the Mula-Mutha 9 km apart, with two discharges\n"+
		"      upstream and a drifting pH probe; MH-NASHIK-001, MH-SANGLI-001, MH-KOLHAPUR-001 healthy), %d days from %s at a\n"+
		"      5-minute step, seeds %s; scored by the Go benchmarks BenchmarkSkill and BenchmarkRound (cloud/internal/forecast)\n"+
		"      and BenchmarkDetection (cloud/internal/anomaly)\n",
		b.simBin(), a.days, historyStart.Format("2006-01-02"), a.seeds)
	dir := filepath.Join(o.work, "analytics")
	var dirs []string
	for _, seed := range seeds {
		h, err := b.history(ctx, dir, seed, a.days)
		if err != nil {
			if ctx.Err() == nil {
				b.fail("analytics: history of seed %d: %v", seed, err)
			}
			return
		}
		dirs = append(dirs, h)
	}
	// The variables the Go benchmarks read (cloud/internal/simhistory.Env and the quick
	// switch of cloud/internal/forecast).
	env := append(os.Environ(), "PH_BENCH_HISTORY="+strings.Join(dirs, string(os.PathListSeparator)))
	if o.quick {
		env = append(env, "PH_BENCH_QUICK=1")
	}
	forecast, err := b.goBench(ctx, env, "github.com/purehealth/purehealth/cloud/internal/forecast", "^(BenchmarkSkill|BenchmarkRound)$")
	if err != nil {
		b.fail("analytics: forecast benchmarks: %v", err)
		return
	}
	detection, err := b.goBench(ctx, env, "github.com/purehealth/purehealth/cloud/internal/anomaly", "^BenchmarkDetection$")
	if err != nil {
		b.fail("analytics: detection benchmark: %v", err)
		return
	}
	b.analyticsLines(forecast["BenchmarkSkill"], forecast["BenchmarkRound"], detection["BenchmarkDetection"], len(seeds))
}

// history writes the scenarios with seed and runs `ph-sim history` on them.
func (b *bench) history(ctx context.Context, dir string, seed int64, days int) (string, error) {
	scen := filepath.Join(dir, fmt.Sprintf("scenarios-%d", seed))
	out := filepath.Join(dir, fmt.Sprintf("history-%d", seed))
	if err := os.MkdirAll(scen, 0o750); err != nil {
		return "", err
	}
	files, err := fs.Glob(scenarioFiles, "scenarios/*.yaml")
	if err != nil {
		return "", err
	}
	args := []string{"history", "--from", historyStart.Format(time.RFC3339),
		"--to", historyStart.Add(time.Duration(days) * 24 * time.Hour).Format(time.RFC3339), "--step", "5m", "--out", out}
	for _, f := range files {
		data, err := scenarioFiles.ReadFile(f)
		if err != nil {
			return "", err
		}
		path := filepath.Join(scen, filepath.Base(f))
		if err := os.WriteFile(path, seedLine.ReplaceAll(data, []byte("seed: "+strconv.FormatInt(seed, 10))), 0o640); err != nil {
			return "", err
		}
		args = append(args, "--scenario", path)
	}
	cmd := exec.CommandContext(ctx, b.simBin(), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	msg, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", b.simBin(), err, strings.TrimSpace(stderr.String()))
	}
	b.printf("   seed %d: ph-sim history: %s", seed, msg)
	return out, nil
}

// goResult is one Go benchmark's metrics by unit, and its log.
type goResult struct {
	metrics map[string]float64
	log     []string
}

// benchLine matches a Go benchmark result: name, iterations, then value-unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\w+)(?:-\d+)?\s+\d+\s+(.*)$`)

// goBench runs `go test -bench` on one package, prints its log and returns the results by
// benchmark name. The Go command is $GO, or go.
func (b *bench) goBench(ctx context.Context, env []string, pkg, pattern string) (map[string]*goResult, error) {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "test", "-run", "^$", "-bench", pattern, "-benchtime", "1x", "-v",
		"-timeout", "30m", pkg)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s test %s: %w\n%s", goCmd, pkg, err, out)
	}
	res := parseGoBench(out)
	for name, r := range res {
		b.printf("   %s (%s):\n", name, pkg)
		for _, l := range r.log {
			b.printf("      %s\n", l)
		}
		var units []string
		for u := range r.metrics {
			units = append(units, u)
		}
		slices.Sort(units)
		var parts []string
		for _, u := range units {
			parts = append(parts, fmt.Sprintf("%s=%.4g", u, r.metrics[u]))
		}
		b.printf("      %s\n", strings.Join(parts, " "))
	}
	return res, nil
}

// parseGoBench reads the output of `go test -bench -v`: each benchmark's metrics by unit
// and its log lines (without their file:line prefix).
func parseGoBench(out []byte) map[string]*goResult {
	res := map[string]*goResult{}
	var cur *goResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "=== RUN") || strings.HasPrefix(trimmed, "--- BENCH"):
		case strings.HasPrefix(line, "Benchmark") && !strings.Contains(line, "\t"):
			cur = &goResult{metrics: map[string]float64{}}
			res[strings.Fields(line)[0]] = cur
		case benchLine.MatchString(line):
			m := benchLine.FindStringSubmatch(line)
			r := res[m[1]]
			if r == nil {
				r = &goResult{metrics: map[string]float64{}}
				res[m[1]] = r
			}
			f := strings.Fields(m[2])
			for i := 0; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					r.metrics[f[i+1]] = v
				}
			}
			cur = r
		case cur != nil && strings.HasPrefix(line, "    "):
			// The log lines keep the benchmark's own words (file:line: message).
			if _, msg, ok := strings.Cut(trimmed, ": "); ok {
				cur.log = append(cur.log, msg)
			}
		}
	}
	return res
}

// metric is a benchmark's metric, or an error naming what is missing.
func metric(r *goResult, bench, unit string) (float64, error) {
	if r == nil {
		return 0, fmt.Errorf("%s did not run", bench)
	}
	v, ok := r.metrics[unit]
	if !ok || math.IsNaN(v) {
		return 0, fmt.Errorf("%s reported no %s", bench, unit)
	}
	return v, nil
}

func (b *bench) analyticsLines(skill, round, detection *goResult, histories int) {
	var errs []error
	get := func(r *goResult, bench, unit string) float64 {
		v, err := metric(r, bench, unit)
		errs = append(errs, err)
		return v
	}
	mase := get(skill, "BenchmarkSkill", "mase")
	cov80 := get(skill, "BenchmarkSkill", "coverage80")
	cov95 := get(skill, "BenchmarkSkill", "coverage95")
	series := get(skill, "BenchmarkSkill", "series")
	hours := get(skill, "BenchmarkSkill", "hours")
	roundS := get(round, "BenchmarkRound", "round_s")
	roundWall := get(round, "BenchmarkRound", "round_wall_s")
	workers := get(round, "BenchmarkRound", "workers")
	precision := get(detection, "BenchmarkDetection", "precision")
	recall := get(detection, "BenchmarkDetection", "recall")
	findings := get(detection, "BenchmarkDetection", "findings")
	truths := get(detection, "BenchmarkDetection", "truths")
	plumes := get(detection, "BenchmarkDetection", "plumes_both")
	drift := get(detection, "BenchmarkDetection", "drift_suspect")
	if err := errors.Join(errs...); err != nil {
		b.fail("analytics: %v", err)
		return
	}
	b.add(nameForecastMASE, mase, 1, "mase", benchline.Goal{Op: benchline.AtMost, Value: goalMASE},
		fmt.Sprintf("seasonal naive (the same hour the day before) on the same hours; geometric mean of per-series MASE over %.0f series "+
			"(5 simulated stations x 8 params, %d histories), forecasts issued every 19 h over the last days, each from its past only", series, histories))
	b.add(nameForecastCoverage, math.Abs(cov80-coverageTarget), coverageAllowed, "share",
		benchline.Goal{Op: benchline.AtMost, Value: 1},
		fmt.Sprintf("the allowed distance from 0.80 (goal: coverage within 0.70-0.90); the 80 pct interval held %.3f of %.0f actual hours, the 95 pct interval %.3f",
			cov80, hours, cov95))
	b.add(nameForecastRound, roundS, forecastInterval.Seconds(), "s", benchline.Goal{Op: benchline.AtMost, Value: goalRoundShare},
		fmt.Sprintf("the 15-min forecast interval; ours: CPU seconds of one round (1000 stations x 8 params, 4 weeks hourly each) / %.0f cores; wall %.1f s on the shared machine%s",
			workers, roundWall, map[bool]string{true: " (quick: 125 stations, times 8)", false: ""}[b.opts.quick]))
	b.add(nameDetectPrecision, precision, 1, "share", benchline.Goal{Op: benchline.AtLeast, Value: goalDetection},
		fmt.Sprintf("every alerting finding right: pollution_event, local_event and suspect_sensor against the simulator's ground truth; %.0f findings, %d histories", findings, histories))
	b.add(nameDetectRecall, recall, 1, "share", benchline.Goal{Op: benchline.AtLeast, Value: goalDetection},
		fmt.Sprintf("every discharge and probe fault of the ground truth found, with the right verdict; %.0f of them, %d histories", truths, histories))
	b.add(nameDetectPlume, plumes, 1, "share", benchline.Goal{Op: benchline.AtLeast, Value: 1},
		"every scenario plume reported as one pollution_event naming both stations it passed")
	b.add(nameDetectDrift, drift, 1, "share", benchline.Goal{Op: benchline.AtLeast, Value: 1},
		"every drifting probe reported as a suspect_sensor")
}
