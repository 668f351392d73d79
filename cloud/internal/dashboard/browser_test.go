package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// browserGuard bounds each wait in the browser; it only turns a hang into a failure.
const browserGuard = 30 * time.Second

// newBrowser starts headless Chromium from the system (Debian's chromium package) with a
// fresh profile and returns a context for its first tab; the browser is stopped at the
// end of the test. Without Chromium the test is skipped, unless PH_REQUIRE_TOOLS=1.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("PH_REQUIRE_TOOLS") == "1" {
			t.Fatal("chromium is not installed (apt-get install chromium) and PH_REQUIRE_TOOLS=1")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "chromium.log"))
	require.NoError(t, err)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()),
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(logf),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if err := logf.Close(); err != nil {
			t.Logf("close chromium log: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("chromium output (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
			}
		}
	})
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// consoleLog collects what the page writes to its console (errors, exceptions and CSP
// refusals among them) until stop is called.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
	stop func()
}

func watchConsole(ctx context.Context) *consoleLog {
	cctx, cancel := context.WithCancel(ctx)
	c := &consoleLog{}
	msgs := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	c.stop = func() {
		cancel()
		<-done
	}
	return c
}

// problems are the errors and exceptions logged so far.
func (c *consoleLog) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String()+" ("+m.URL+")")
		}
	}
	return out
}

// The pure logic of the page (logic.js) and the chart drawing, tested in a real browser
// under the dashboard's own Content-Security-Policy.
func TestLogicInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	files := http.StripPrefix("/test/", http.FileServer(http.Dir("testdata")))
	mux.HandleFunc("/test/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(r.Host))
		files.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	console := watchConsole(ctx)
	defer console.stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/logic_test.html")))
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.__done === true`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(browserGuard)))
	require.NoError(t, err, "the tests in logic_test.js did not finish; console: %v", console.problems())
	type result struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
		Msg  string `json:"msg"`
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]result](`window.__results`))
	require.NoError(t, err)
	require.NotEmpty(t, results, "logic_test.js reported no tests")
	for _, r := range results {
		t.Run(strings.ReplaceAll(r.Name, " ", "_"), func(t *testing.T) {
			assert.True(t, r.OK, "%s", r.Msg)
		})
	}
	assert.Empty(t, console.problems(), "the page logged errors")
}
