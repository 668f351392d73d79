package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/browsertest"
)

// The forecast drawing and the evidence of cloud alerts (forecast.js), tested in a real
// browser under the dashboard's own Content-Security-Policy.
func TestForecastInBrowser(t *testing.T) {
	ctx := browsertest.New(t, t.TempDir())
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	files := http.StripPrefix("/test/", http.FileServer(http.Dir("testdata")))
	mux.HandleFunc("/test/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(r.Host))
		files.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/forecast_test.html")))
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.__done === true`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserGuard)))
	require.NoError(t, err, "the tests in forecast_test.js did not finish; console: %v", console.Problems())
	type result struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
		Msg  string `json:"msg"`
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]result](`window.__results`))
	require.NoError(t, err)
	require.NotEmpty(t, results, "forecast_test.js reported no tests")
	for _, r := range results {
		t.Run(strings.ReplaceAll(r.Name, " ", "_"), func(t *testing.T) {
			assert.True(t, r.OK, "%s", r.Msg)
		})
	}
	assert.Empty(t, console.Problems(), "the page logged errors")
}
