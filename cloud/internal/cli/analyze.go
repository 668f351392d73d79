package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/cloud/internal/anomaly"
	"github.com/purehealth/purehealth/cloud/internal/forecast"
	"github.com/purehealth/purehealth/cloud/internal/hourly"
	"github.com/purehealth/purehealth/cloud/internal/seriescsv"
	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/shared/telemetry"
	"github.com/purehealth/purehealth/shared/validate"
)

// wqiParam is the series name of the water quality index, which has no telemetry.Param.
const wqiParam = "wqi"

// maxAnalyzeSpan bounds the detector's look at a file: a year of hours.
const maxAnalyzeSpan = 366 * 24

// analysis is the --json output of `ph-cloud analyze` (design §5a, a contract). Reason is
// added only when there is no forecast, to say why.
type analysis struct {
	Param      string           `json:"param"`
	Points     int              `json:"points"`
	Model      string           `json:"model"`
	MASE       *float64         `json:"mase"`
	Coverage80 *float64         `json:"coverage80"`
	Coverage95 *float64         `json:"coverage95"`
	Anomalies  []anomaly.Flag   `json:"anomalies"`
	Forecast   []forecast.Point `json:"forecast"`
	Reason     string           `json:"reason,omitempty"`
}

func newAnalyzeCommand() *cobra.Command {
	var (
		param  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "analyze --param P FILE.csv",
		Short: "Backtest the forecaster and run the anomaly detector on a CSV of one series",
		Long: `Read one series from a CSV file with a header and the columns time,value (other
columns are ignored; times in RFC 3339 or 2006-01-02 15:04:05 in UTC, at any regular or
irregular step), grade it as a station agent would (physical and plausible range, spikes,
flatlines), and then, with no database:

  - backtest the forecaster (seasonal naive, drift and exponential smoothing with a daily
    season) on the good readings and print the chosen model's MASE against seasonal naive
    and the coverage of its 80 % and 95 % intervals, and its forecast for the 24 hours after
    the file's last reading, hour by hour;
  - run the single-station anomaly detector on the good and suspect readings and print the
    readings it flags, with their robust scores and kinds (deviation, level_shift, drift,
    stuck, spike).

--json prints {"param","points","model","mase","coverage80","coverage95","anomalies":
[{"time","value","score","kind"}],"forecast":[{"time","value","lo80","hi80","lo95","hi95"}]};
with too little history "model" is "none", the skill null, "forecast" empty and "reason"
says why. P is a parameter (ph, do, bod, fc, tds, temp, turbidity, conductivity, chla or an
alias such as DO) or wqi.`,
		Example: `  ph-cloud analyze --param do station-do.csv
  ph-cloud analyze --param ph ph.csv --json | jq .mase`,
		Args: func(cmd *cobra.Command, args []string) error {
			return exitcode.AtStartup(cobra.ExactArgs(1)(cmd, args))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := analyzeParam(param)
			if err != nil {
				return exitcode.AtStartup(err)
			}
			s, err := readSeries(args[0])
			if err != nil {
				return exitcode.AtStartup(err)
			}
			a, rep := analyze(p, s)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(a)
			}
			return rep.render(cmd.OutOrStdout(), args[0], a)
		},
	}
	cmd.Flags().StringVar(&param, "param", "", "the parameter of the series, or wqi (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func analyzeParam(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("--param is required (ph, do, bod, fc, tds, temp, turbidity, conductivity, chla or wqi)")
	case strings.EqualFold(strings.TrimSpace(s), wqiParam):
		return wqiParam, nil
	}
	p, err := telemetry.ParseParam(s)
	if err != nil {
		return "", fmt.Errorf("--param: %w", err)
	}
	return string(p), nil
}

// readSeries reads FILE, refusing one larger than the CSV reader's limit before reading it.
func readSeries(path string) (seriescsv.Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return seriescsv.Series{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > seriescsv.DefaultMaxBytes {
		return seriescsv.Series{}, fmt.Errorf("%s: %w: %d bytes, at most %d", path, seriescsv.ErrTooLarge, st.Size(), seriescsv.DefaultMaxBytes)
	}
	s, err := seriescsv.Read(f, seriescsv.Limits{})
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// report is what the human output says besides the JSON's content.
type report struct {
	rows, missing, suspect, bad int
	first, last                 time.Time
	res                         forecast.Result
	err                         error
	scan                        anomaly.Scan
}

// analyze grades the readings, forecasts and scans them.
func analyze(param string, s seriescsv.Series) (analysis, report) {
	rep := report{rows: s.Rows, missing: s.Missing}
	pts := slices.Clone(s.Points)
	slices.SortStableFunc(pts, func(a, b hourly.Point) int { return a.Time.Compare(b.Time) })
	rep.first, rep.last = pts[0].Time, pts[len(pts)-1].Time

	graded := grade(param, pts)
	var (
		good   []forecast.Reading
		usable []hourly.Point
	)
	for i, q := range graded {
		switch q {
		case telemetry.Good:
			good = append(good, forecast.Reading{Time: pts[i].Time, Value: pts[i].Value, Quality: q})
			usable = append(usable, pts[i])
		case telemetry.Suspect:
			rep.suspect++
			usable = append(usable, pts[i])
		default:
			rep.bad++
		}
	}
	a := analysis{Param: param, Points: len(pts), Model: "none", Anomalies: []anomaly.Flag{}, Forecast: []forecast.Point{}}

	// The file is complete: its last hour counts, and the forecast starts with the next.
	issued := rep.last.Truncate(time.Hour).Add(time.Hour)
	rep.res, rep.err = forecast.Make(forecast.Input{Param: param, Readings: good, IssuedAt: issued}, forecast.Options{})
	if rep.err == nil {
		f := rep.res.Forecast
		a.Model, a.Forecast = f.Model, f.Points
		a.MASE, a.Coverage80, a.Coverage95 = &f.Skill.MASE, &f.Skill.Coverage80, &f.Skill.Coverage95
	} else {
		a.Reason = rep.err.Error()
	}

	span := int(rep.last.Sub(rep.first)/time.Hour) + 2
	rep.scan = anomaly.ScanSeries(anomaly.Series{Param: param, Points: usable},
		anomaly.Options{MaxHours: min(span, maxAnalyzeSpan)})
	for _, fl := range rep.scan.Flags {
		fl.Score = math.Round(fl.Score*100) / 100
		a.Anomalies = append(a.Anomalies, fl)
	}
	return a, rep
}

// grade gives each reading (in time order) the quality a station agent would: the same
// checks, as if each had been received when it was taken. The WQI is checked against its
// range only.
func grade(param string, pts []hourly.Point) []telemetry.Quality {
	out := make([]telemetry.Quality, len(pts))
	if param == wqiParam {
		for i, p := range pts {
			out[i] = telemetry.Good
			if p.Value < 0 || p.Value > 100 {
				out[i] = telemetry.Bad
			}
		}
		return out
	}
	c := validate.New(validate.Config{})
	for i, p := range pts {
		r := telemetry.Reading{Station: "analyze", Sensor: "csv", Param: telemetry.Param(param), Value: p.Value, Time: p.Time}
		c.Check(&r, validate.Input{Received: p.Time, ClockSynced: true})
		out[i] = r.Quality
	}
	return out
}

func (rep report) render(w io.Writer, file string, a analysis) error {
	const ts = "2006-01-02 15:04"
	bw := &errWriter{w: w}
	bw.printf("%s from %s\n", a.Param, file)
	bw.printf("readings  %d of %d rows (%d missing values); %d graded suspect, %d bad; %s to %s UTC\n",
		a.Points, rep.rows, rep.missing, rep.suspect, rep.bad, rep.first.Format(ts), rep.last.Format(ts))
	st := rep.res.Series
	if st.Hours > 0 {
		bw.printf("hourly    %d hours from %s, %d with a good value, longest gap %d h, %d outlier hours left out\n",
			st.Hours, rep.res.From.Format(ts), st.Observed, st.LongestGap, st.Outliers)
	}
	bw.printf("\n")
	if rep.err != nil {
		bw.printf("no forecast: %v\n", rep.err)
	} else {
		f := rep.res.Forecast
		bw.printf("model     %s\n", rep.res.Why)
		bw.printf("skill     MASE %.3f against seasonal naive (below 1 beats it); the 80 %% interval held %.0f %% of the\n"+
			"          actual values and the 95 %% interval %.0f %%, over %d backtest forecasts\n",
			f.Skill.MASE, 100*f.Skill.Coverage80, 100*f.Skill.Coverage95, f.Skill.BacktestPoints)
	}
	if len(rep.res.Candidates) > 0 {
		bw.printf("\n")
		tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METHOD\tMASE\tCOVER80\tCOVER95\tPOINTS\tFITTED")
		for _, c := range rep.res.Candidates {
			if c.Err != nil {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tnot scored: %v\n", c.Model, c.Err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%d\t%s\n", c.Model, c.MASE, c.Coverage80, c.Coverage95, c.Points, c.Params)
		}
		bw.err = errors.Join(bw.err, tw.Flush())
	}

	bw.printf("\nanomalies %d episodes, %d readings flagged\n", len(rep.scan.Episodes), len(a.Anomalies))
	for _, e := range rep.scan.Episodes {
		side := map[int]string{1: "above", -1: "below", 0: "both ways"}[e.Sign]
		line := fmt.Sprintf("  %s to %s  %-11s %-9s", e.Start.Format(ts), e.End.Format(ts), e.Kind, side)
		if e.Kind == anomaly.KindSpike {
			line += fmt.Sprintf(" %d spikes, largest %.4g at %s (neighbours %.4g, score %.1f)", e.Spikes,
				e.Peak.Value, e.Peak.Time.Format(ts), e.Peak.Baseline, e.Peak.Score)
		} else if !e.Peak.Time.IsZero() {
			line += fmt.Sprintf(" peak %.4g at %s (baseline %.4g, normal %.4g–%.4g, score %.1f)", e.Peak.Value,
				e.Peak.Time.Format("15:04"), e.Peak.Baseline, e.Peak.Low, e.Peak.High, e.Peak.Score)
		}
		if e.Ongoing {
			line += ", ongoing"
		}
		bw.printf("%s\n", line)
	}

	if len(a.Forecast) > 0 {
		bw.printf("\nforecast  the next %d hours (UTC; each value is its hour's median)\n", len(a.Forecast))
		tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOUR\tVALUE\t80 %\t95 %")
		for _, p := range a.Forecast {
			fmt.Fprintf(tw, "%s\t%.4g\t%.4g – %.4g\t%.4g – %.4g\n", p.Time.Format(ts), p.Value, p.Lo80, p.Hi80, p.Lo95, p.Hi95)
		}
		bw.err = errors.Join(bw.err, tw.Flush())
	}
	return bw.err
}

// errWriter keeps the first write error, so rendering can write freely and report once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
