package satellite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Response is a Statistical API response: one Interval per day with data (days without an
// acquisition, or whose scenes the cloud filter dropped, are absent).
type Response struct {
	Status    string // OK, PARTIAL (some intervals failed) or FAILED
	Intervals []Interval
}

// Interval is one day's statistics.
type Interval struct {
	From, To time.Time
	// Error is the type of a failed interval (EXECUTION_ERROR), which has no outputs.
	Error string
	// Bands holds the statistics of each band of each output: Bands["water"]["B0"].
	Bands map[string]map[string]BandStats
}

// BandStats are one band's statistics over the area. Mean, Min, Max and StDev are NaN
// where the service printed "NaN" (no valid pixel).
type BandStats struct {
	Min, Max, Mean, StDev    float64
	SampleCount, NoDataCount int
}

// Valid is the number of pixels that had data.
func (s BandStats) Valid() int { return s.SampleCount - s.NoDataCount }

// maxIntervals bounds the intervals one response may hold: a year of days and some slack.
const maxIntervals = 400

// statNumber reads a statistic printed as a number or as a string ("NaN", and other
// numbers the service might quote).
type statNumber float64

func (n *statNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*n = statNumber(math.NaN())
		return nil
	}
	s := string(b)
	if u, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(u)
		if strings.EqualFold(s, "nan") {
			*n = statNumber(math.NaN())
			return nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || (math.IsNaN(v) && !strings.EqualFold(s, "nan")) {
		return fmt.Errorf("want a number or \"NaN\", got %.40s", b)
	}
	*n = statNumber(v)
	return nil
}

// ParseResponse decodes a Statistical API response and checks what the estimates rely
// on: interval bounds in order, pixel counts that are counts.
func ParseResponse(body []byte) (*Response, error) {
	var v struct {
		Status string `json:"status"`
		Data   []struct {
			Interval struct {
				From time.Time `json:"from"`
				To   time.Time `json:"to"`
			} `json:"interval"`
			Outputs map[string]struct {
				Bands map[string]struct {
					Stats struct {
						Min         statNumber `json:"min"`
						Max         statNumber `json:"max"`
						Mean        statNumber `json:"mean"`
						StDev       statNumber `json:"stDev"`
						SampleCount int        `json:"sampleCount"`
						NoDataCount int        `json:"noDataCount"`
					} `json:"stats"`
				} `json:"bands"`
			} `json:"outputs"`
			Error *struct {
				Type string `json:"type"`
			} `json:"error"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("statistics response: %w", err)
	}
	if len(v.Data) > maxIntervals {
		return nil, fmt.Errorf("statistics response: %d intervals, at most %d", len(v.Data), maxIntervals)
	}
	r := &Response{Status: v.Status, Intervals: make([]Interval, 0, len(v.Data))}
	for i, d := range v.Data {
		iv := Interval{From: d.Interval.From.UTC(), To: d.Interval.To.UTC()}
		if !iv.To.After(iv.From) {
			return nil, fmt.Errorf("interval %d: from %s is not before to %s", i, iv.From, iv.To)
		}
		if d.Error != nil {
			iv.Error = d.Error.Type
			if iv.Error == "" {
				iv.Error = "unknown"
			}
			r.Intervals = append(r.Intervals, iv)
			continue
		}
		iv.Bands = map[string]map[string]BandStats{}
		for out, o := range d.Outputs {
			iv.Bands[out] = map[string]BandStats{}
			for band, b := range o.Bands {
				s := b.Stats
				if s.SampleCount < 0 || s.NoDataCount < 0 || s.NoDataCount > s.SampleCount {
					return nil, fmt.Errorf("interval %d, %s %s: noDataCount %d of sampleCount %d", i, out, band,
						s.NoDataCount, s.SampleCount)
				}
				iv.Bands[out][band] = BandStats{Min: float64(s.Min), Max: float64(s.Max), Mean: float64(s.Mean),
					StDev: float64(s.StDev), SampleCount: s.SampleCount, NoDataCount: s.NoDataCount}
			}
		}
		r.Intervals = append(r.Intervals, iv)
	}
	return r, nil
}
