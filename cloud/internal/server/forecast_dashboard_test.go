package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/cloud/internal/forecastjob"
	"github.com/purehealth/purehealth/internal/browsertest"
)

// waitFor polls a JavaScript condition in the page until it holds, failing with what the
// page shows when it does not within 30 s.
func waitFor(t *testing.T, ctx context.Context, console *browsertest.Console, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main')?.innerText`))
		t.Fatalf("dashboard: want %s: %v\npage:\n%s\nconsole: %v", what, err, page, console.Problems())
	}
}

// TestDashboardDrawsTheForecast opens the station page of the running service in
// Chromium: the DO chart draws the forecast's 80 % and 95 % bands after the last reading
// with the model's skill in words under it, the early warning in the alert feed opens
// its evidence, and a new forecast pushed as a "prediction" message redraws the band
// without a reload.
func TestDashboardDrawsTheForecast(t *testing.T) {
	a := startAnalytics(t)
	ctx := browsertest.New(t, t.TempDir())
	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	// The first forecast round has run once the warning is in the API.
	require.Eventually(t, func() bool {
		_, body := get(t, a.base+"/v1/alerts?station=MH-PUNE-001")
		return len(body) > 0 && contains(body, "forecast_breach")
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(a.base+"/#/station/MH-PUNE-001")))
	waitFor(t, ctx, console, "the page live", `document.querySelector('#conn').dataset.state === 'live'`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-range="24h"]`))))
	band := `document.querySelector('#st-charts figure[data-key="do"] svg g.forecast')`
	waitFor(t, ctx, console, "the forecast band drawn on the DO chart",
		band+`?.querySelector('polygon.fc-band-80') && `+band+`.querySelector('polygon.fc-band-95') !== null`)
	note, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#st-charts figure[data-key="do"] .forecast-note`)))
	require.NoError(t, err)
	assert.Regexp(t, `^Forecast by .+, issued \d\d:\d\d: (beats|does .+ than|is) the same-hour-yesterday forecast.*; \d+ % of actuals fell in the 80 % band over \d+ backtests\.$`, note)

	// After the chart's last reading: the band's leftmost edge is right of the line's end.
	after, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const fig = document.querySelector('#st-charts figure[data-key="do"]');
		const band = fig.querySelector('polygon.fc-band-80').getBBox();
		const last = fig.querySelector('circle.last');
		return band.x >= Number(last.getAttribute('cx')) - 1 && band.width > 0;
	})()`))
	require.NoError(t, err)
	assert.True(t, after, "the band starts after the last reading")

	waitFor(t, ctx, console, "the early warning's evidence in the feed",
		`[...document.querySelectorAll('#st-active li details.evidence')].some((d) =>
			d.querySelector('summary').textContent.includes('forecast_breach') && d.textContent.includes('Limit: CPCB class B'))`)

	// The next hour's forecast, pushed live: the band follows it.
	issued, err := chromedp.Run(ctx, chromedp.Evaluate[string](band+`.dataset.issued`))
	require.NoError(t, err)
	next := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 5*time.Minute)
	r := forecastjob.New(a.store, forecastjob.Options{Now: func() time.Time { return next }})
	var rep forecastjob.Report
	// The service's own first round may still be on its way through the other station.
	require.Eventually(t, func() bool {
		rep, err = r.Round(t.Context())
		return err != nil || !rep.Skipped
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, err)
	require.Positive(t, rep.Stored, "a new forecast")
	waitFor(t, ctx, console, "the band redrawn from the prediction message",
		band+`?.dataset.issued === '`+next.Format("2006-01-02T15:04:05Z")+`'`)
	assert.NotEqual(t, next.Format(time.RFC3339), issued)
	assert.Empty(t, console.Problems(), "the page logged errors")
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
