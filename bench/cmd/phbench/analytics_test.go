package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
goarch: amd64
pkg: github.com/purehealth/purehealth/cloud/internal/forecast
cpu: Intel(R) Xeon(R) Processor
BenchmarkSkill
    bench_test.go:146: MH-PUNE-001/do MASE 0.812
    bench_test.go:164: models chosen: map[ets_ana:3]
BenchmarkSkill-2   	       1	2141501070 ns/op	         0.7186 coverage80	         0.7653 mase	        39.00 series
BenchmarkRound
BenchmarkRound-2   	       1	12578322435 ns/op	        25.46 round_s
--- BENCH: BenchmarkRound-2
    bench_test.go:276: 1000 series on 2 goroutines
PASS
ok  	github.com/purehealth/purehealth/cloud/internal/forecast	183.640s
`)
	res := parseGoBench(out)
	require.Contains(t, res, "BenchmarkSkill")
	require.Contains(t, res, "BenchmarkRound")
	assert.Equal(t, map[string]float64{"ns/op": 2141501070, "coverage80": 0.7186, "mase": 0.7653, "series": 39}, res["BenchmarkSkill"].metrics)
	assert.Equal(t, []string{"MH-PUNE-001/do MASE 0.812", "models chosen: map[ets_ana:3]"}, res["BenchmarkSkill"].log)
	assert.Equal(t, 25.46, res["BenchmarkRound"].metrics["round_s"])
	assert.Equal(t, []string{"1000 series on 2 goroutines"}, res["BenchmarkRound"].log)

	_, err := metric(res["BenchmarkSkill"], "BenchmarkSkill", "coverage95")
	assert.EqualError(t, err, "BenchmarkSkill reported no coverage95")
	_, err = metric(nil, "BenchmarkDetection", "precision")
	assert.EqualError(t, err, "BenchmarkDetection did not run")
}

func TestAnalyticsOptions(t *testing.T) {
	a := analyticsOptions{}
	a.defaults(true)
	assert.Equal(t, "21", a.seeds)
	assert.Equal(t, 14, a.days)
	a = analyticsOptions{}
	a.defaults(false)
	seeds, err := a.seedList()
	require.NoError(t, err)
	assert.Equal(t, []int64{21, 22, 23}, seeds)
	assert.Empty(t, a.validate())
	bad := analyticsOptions{seeds: "1,x", days: 3}
	assert.Len(t, bad.validate(), 2)
}
