package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/config"
)

func TestAnalyticsKeys(t *testing.T) {
	cfg, err := config.Parse([]byte("database_url: postgres://h/db\nforecast: {interval: 30m, timezone: Asia/Kolkata}\n" +
		"anomaly: {interval: 10m, workers: 4}\nretention: {forecasts: 3d}\n"))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Minute, cfg.Forecast.Interval.Std())
	assert.Equal(t, 0, cfg.Forecast.Workers, "not given: the default")
	assert.Equal(t, "Asia/Kolkata", cfg.Forecast.Location().String())
	assert.Equal(t, 10*time.Minute, cfg.Anomaly.Interval.Std())
	assert.Equal(t, 4, cfg.Anomaly.Workers)
	assert.Equal(t, 3*24*time.Hour, cfg.Retention.Forecasts.Std())

	for doc, want := range map[string]string{
		"forecast: {interval: 5s}":         "forecast.interval: 5s is shorter than 10s",
		"forecast: {workers: -1}":          "forecast.workers: -1 must be 0..256 (0: half the processors)",
		"forecast: {timezone: Mars/Olymp}": `forecast.timezone: "Mars/Olymp" is not an IANA time zone such as Asia/Kolkata`,
		"anomaly: {interval: 0s}":          "anomaly.interval: 0s is shorter than 10s",
		"anomaly: {workers: 0}":            "anomaly.workers: 0 must be 1..256",
		"retention: {forecasts: 1d}":       "retention.forecasts: 1d is shorter than 2d",
		"forecast: {every: 5m}":            "",
	} {
		t.Run(doc, func(t *testing.T) {
			_, err := config.Parse([]byte("database_url: postgres://h/db\n" + doc + "\n"))
			require.Error(t, err)
			if want != "" {
				assert.Equal(t, want, err.Error())
			} else {
				assert.Contains(t, err.Error(), "every", "an unknown key names itself")
			}
		})
	}
}
