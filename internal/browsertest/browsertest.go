// Package browsertest drives the system's headless Chromium (Debian's chromium package)
// for the tests of the dashboard: a fresh browser per test and what its pages log.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testtool"
)

// New starts headless Chromium with a fresh profile in dir and returns a context for its
// first tab; the browser stops at the end of the test, and its output is logged when the
// test failed. Without Chromium the test is skipped, unless PH_REQUIRE_TOOLS=1.
func New(t *testing.T, dir string) context.Context {
	t.Helper()
	bin := testtool.LookPath(t, "chromium", "chromium", "chromium-browser")
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

// Console collects what the pages of a tab write to their console (errors, exceptions
// and Content-Security-Policy refusals among them) until Stop.
type Console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
	stop func()
}

// WatchConsole starts collecting the console messages of ctx's tab.
func WatchConsole(ctx context.Context) *Console {
	cctx, cancel := context.WithCancel(ctx)
	c := &Console{}
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
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	return c
}

// Stop ends the collection and waits for its goroutine. It may be called more than once.
func (c *Console) Stop() { c.stop() }

// Problems are the errors and exceptions logged so far, each with the page it came from.
func (c *Console) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, strings.TrimSpace(m.String()+" ("+m.URL+")"))
		}
	}
	return out
}
