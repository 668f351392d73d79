// Package promtest reads a Prometheus /metrics endpoint for tests, with Prometheus' own
// text parser (github.com/prometheus/common/expfmt), so that what a test checks is what a
// Prometheus server would scrape.
package promtest

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url and parses the exposition; t fails unless it answers 200 with text
// the parser takes.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, "scrape %s", url)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "scrape %s", url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "the exposition of %s parses", url)
	return fams
}

// Value is the value of the first series of name whose labels include want (nil: the
// first series): a counter's or a gauge's value, a histogram's count of observations.
// ok is false when there is no such series.
func (f Families) Value(name string, want map[string]string) (v float64, ok bool) {
	fam, found := f[name]
	if !found {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			if w, has := want[l.GetName()]; has && w != l.GetValue() {
				continue next
			}
		}
		for n := range want {
			if !hasLabel(m, n) {
				continue next
			}
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return true
		}
	}
	return false
}
