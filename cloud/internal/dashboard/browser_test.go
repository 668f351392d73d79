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

// browserGuard bounds each wait in the browser; it only turns a hang into a failure.
const browserGuard = 30 * time.Second

// The pure logic of the page (logic.js) and the chart drawing, tested in a real browser
// under the dashboard's own Content-Security-Policy.
func TestLogicInBrowser(t *testing.T) { runBrowserTests(t, "logic_test.html") }

// runBrowserTests opens testdata/page in a real browser, next to the dashboard's own
// files and under its Content-Security-Policy, and reports the tests the page ran (each
// {name, ok, msg} in window.__results, window.__done once they all ran) as subtests.
func runBrowserTests(t *testing.T, page string) {
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
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/"+page)))
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.__done === true`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserGuard)))
	require.NoError(t, err, "the tests of %s did not finish; console: %v", page, console.Problems())
	type result struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
		Msg  string `json:"msg"`
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]result](`window.__results`))
	require.NoError(t, err)
	require.NotEmpty(t, results, "%s reported no tests", page)
	for _, r := range results {
		t.Run(strings.ReplaceAll(r.Name, " ", "_"), func(t *testing.T) {
			assert.True(t, r.OK, "%s", r.Msg)
		})
	}
	assert.Empty(t, console.Problems(), "the page logged errors")
}
