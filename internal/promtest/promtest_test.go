package promtest

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
)

func TestScrapeAndValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"reason"})
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(5)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "y", Help: "y"})
	g.Set(1.5)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "z_seconds", Help: "z"})
	h.Observe(.1)
	h.Observe(.2)
	reg.MustRegister(c, g, h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	f := Scrape(t, srv.URL)
	for _, tt := range []struct {
		name string
		want map[string]string
		v    float64
		ok   bool
	}{
		{"x_total", map[string]string{"reason": "b"}, 5, true},
		{"x_total", map[string]string{"reason": "a"}, 2, true},
		{"x_total", map[string]string{"reason": "c"}, 0, false},
		{"x_total", map[string]string{"other": "a"}, 0, false},
		{"y", nil, 1.5, true},
		{"z_seconds", nil, 2, true},
		{"nope", nil, 0, false},
	} {
		v, ok := f.Value(tt.name, tt.want)
		assert.Equal(t, tt.ok, ok, "%s %v", tt.name, tt.want)
		assert.Equal(t, tt.v, v, "%s %v", tt.name, tt.want)
	}
}
