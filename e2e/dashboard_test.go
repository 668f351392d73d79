package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/browsertest"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// The operator's dashboard in headless Chromium, served by a real ph-cloud over its
// database and fed by a real ph-agent.
//
// The cloud requires a viewer token: without one the page says NO ACCESS and how to give
// one; with ?token= it keeps the token for the tab and drops it from the address. Then
// the page lists the station and goes LIVE; an alert raised at the station appears in the
// feed as "just now"; on the station page a reading published at the agent appears
// without a reload; when ph-cloud dies the page says OFFLINE, and when it is back the page
// is LIVE again and shows the alert raised meanwhile. While the cloud is up the page logs
// no error or exception (a refusal by the Content-Security-Policy among them).
// Screenshots at desktop and phone widths go to $PH_ARTIFACTS_DIR (else a temporary
// directory), their paths logged.
func TestDashboard(t *testing.T) {
	const viewerToken = "dashboard-viewer-token-1"
	ctx := browsertest.New(t, testDir(t))
	c := newCloud(t, pgtest.New(t))
	// The cloud lets only holders of a viewer token watch. Without one the page says so.
	sum := sha256.Sum256([]byte(viewerToken))
	f, err := os.OpenFile(c.Config, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "websocket:\n  viewer_tokens_sha256: [%q]\n", hex.EncodeToString(sum[:]))
	require.NoError(t, errors.Join(err, f.Close()))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)
	mq := pahotest.Connect(t, a.Listen, "sys", guard)
	// Enough for a full WQI of good water.
	for _, p := range []struct{ param, value string }{
		{"ph", "7.4"}, {"bod", "2"}, {"fc", "120"}, {"temp", "26"}, {"do", "6.8"},
	} {
		pahotest.PublishAcked(t, mq, a.Topic(p.param), p.value, guard)
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.URL()+"/")))
	waitPage(t, ctx, nil, "NO ACCESS without a viewer token", `document.querySelector('#conn').dataset.state === 'unauthorized'`)
	banner, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#banner`)))
	require.NoError(t, err)
	assert.Contains(t, banner, "sign in", "the page should say how to give the token")
	waitPage(t, ctx, nil, "the sign-in form asks for it", `document.querySelector('#signin').open === true`)

	// With the token in the address, once: the page keeps it for the tab and takes it out
	// of the address bar.
	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	// An operator who asked for less motion gets none (and the screenshots are steady).
	_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}}})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.URL()+"/?token="+viewerToken)))
	card := `document.querySelector('#station-list li[data-key="` + station + `"]')`
	waitPage(t, ctx, console, "the dashboard goes LIVE", `document.querySelector('#conn').dataset.state === 'live'`)
	waitPage(t, ctx, console, "the station is listed with its index",
		card+`?.querySelector('.wqi-class')?.textContent === 'A'`)
	motion, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('.conn-dot')).animationName`))
	require.NoError(t, err)
	assert.Equal(t, "none", motion, "the LIVE indicator must not pulse with prefers-reduced-motion")
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[location.search, sessionStorage.getItem('purehealth.viewerToken')]`))
	require.NoError(t, err)
	assert.Equal(t, []string{"", viewerToken}, kept, "the token leaves the address and stays in the tab's session storage")
	waitPage(t, ctx, console, "only the overview shown", `document.querySelector('#view-station').getClientRects().length === 0`)
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#station-list li[data-key="`+station+`"] .st-name`)))
	require.NoError(t, err)
	assert.Equal(t, "Mula-Mutha at Sangam", name)
	// A reload would clear this.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`)))

	// Dissolved oxygen falls below class B's 5 mg/L: the station raises an alert.
	pahotest.PublishAcked(t, mq, a.Topic("do"), "2", guard)
	waitPage(t, ctx, console, `a new alert in the feed as "just now"`,
		`[...document.querySelectorAll('#active-alerts li')].some((li) => li.textContent.includes('`+station+`') &&
			li.textContent.includes('just now') && li.textContent.includes('active'))`)
	waitPage(t, ctx, console, "the alert announced to screen readers",
		`document.querySelector('#announcer[aria-live]')?.textContent.includes('alert at Mula-Mutha at Sangam')`)
	waitPage(t, ctx, console, "the station shown online",
		card+`?.querySelector('.state')?.textContent === 'Online'`)
	waitPage(t, ctx, console, "the station's card counts the alert",
		card+`?.querySelector('.alert-count.has-alerts') !== null`)
	shot(t, ctx, "dashboard-overview-desktop")

	// The station page, reached by its link (a route in the page, not a new document).
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#station-list li[data-key="`+station+`"] a`))))
	waitPage(t, ctx, console, "the station page with the current temperature",
		`document.querySelector('#st-now tr[data-key="temp"]')?.textContent.includes('26')`)
	waitPage(t, ctx, console, "the focus on the station's heading", `document.activeElement?.id === 'st-title'`)
	waitPage(t, ctx, console, "only the station page shown", `document.querySelector('#view-overview').getClientRects().length === 0`)
	pahotest.PublishAcked(t, mq, a.Topic("temp"), "27.35", guard)
	waitPage(t, ctx, console, "the new reading in the current state",
		`document.querySelector('#st-now tr[data-key="temp"]')?.textContent.includes('27.35')`)
	waitPage(t, ctx, console, "the new reading in the temperature chart",
		`document.querySelector('#st-charts figure[data-key="temp"] .latest')?.textContent.includes('27.35')`)
	waitPage(t, ctx, console, "the station's alert on its page",
		`document.querySelector('#st-active li') !== null`)
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__sameDocument === true`))
	require.NoError(t, err)
	assert.True(t, same, "the page was reloaded; live updates must not need that")
	shot(t, ctx, "dashboard-station-desktop")

	// The longer ranges read hourly rollups (a refused query would be logged as an error).
	for _, r := range []struct{ button, note string }{{"7d", "last 7 d"}, {"24h", "last 24 h"}, {"1h", "Every reading"}} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-range="`+r.button+`"]`))))
		waitPage(t, ctx, console, "the "+r.button+" range loaded",
			`document.querySelector('button[data-range="`+r.button+`"]').getAttribute('aria-pressed') === 'true' &&
			document.querySelector('#st-range-note').textContent.includes('`+r.note+`') &&
			document.querySelector('#st-charts figure[data-key="temp"] svg') !== null`)
		if r.button == "24h" {
			shot(t, ctx, "dashboard-station-24h-desktop")
		}
	}

	// A backlog arrives (readings older than websocket.live_max_age, as after an outage):
	// one backfill notice, and the station page reads its charts again.
	const readsJS = `performance.getEntriesByType('resource').filter((e) => e.name.includes('/readings?')).length`
	reads, err := chromedp.Run(ctx, chromedp.Evaluate[int](readsJS))
	require.NoError(t, err)
	postBacklog(t, c.URL(), c.Token, time.Now().Add(-3*time.Hour), 30)
	waitPage(t, ctx, console, "the station page reloaded after the backfill notice",
		fmt.Sprintf("%s > %d", readsJS, reads))

	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)))
	waitPage(t, ctx, console, "the charts redrawn at phone width",
		`document.querySelector('#chart-wqi svg')?.getAttribute('width') < 400`)
	shot(t, ctx, "dashboard-station-phone")
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#/'`)))
	waitPage(t, ctx, console, "back on the overview", `!document.querySelector('#view-overview').hidden`)
	shot(t, ctx, "dashboard-overview-phone")
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))

	assert.Empty(t, console.Problems(), "the page logged errors while the cloud was up")

	// The cloud dies: the page says so.
	c.serve.Kill(t)
	waitPage(t, ctx, console, "OFFLINE once the cloud is gone", `document.querySelector('#conn').dataset.state === 'offline'`)
	label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#conn-label`)))
	require.NoError(t, err)
	assert.Equal(t, "OFFLINE", label)
	shot(t, ctx, "dashboard-offline-desktop")

	// Meanwhile pH rises above class B's 8.5 at the station. When the cloud is back the
	// page resumes where it was and shows that alert too, without a reload.
	pahotest.PublishAcked(t, mq, a.Topic("ph"), "9.6", guard)
	c.serve.Start(t)
	waitPage(t, ctx, nil, "LIVE again once the cloud is back", `document.querySelector('#conn').dataset.state === 'live'`)
	waitPage(t, ctx, nil, "the alert raised during the outage",
		`[...document.querySelectorAll('#active-alerts li')].some((li) => li.textContent.includes('pH') &&
			li.textContent.includes('`+station+`'))`)
	same, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__sameDocument === true`))
	require.NoError(t, err)
	assert.True(t, same, "the page was reloaded to recover")
}

// waitPage polls a JavaScript condition in the page until it holds; on timeout it fails
// with what the page shows and, when console is not nil, the errors it logged.
func waitPage(t *testing.T, ctx context.Context, console *browsertest.Console, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(guard)))
	if err == nil {
		return
	}
	var problems []string
	if console != nil {
		problems = console.Problems()
	}
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[
		'connection: ' + document.querySelector('#conn')?.dataset.state,
		'banner: ' + (document.querySelector('#banner')?.hidden ? '' : document.querySelector('#banner')?.textContent),
		'main: ' + document.querySelector('main')?.innerText,
	].join('\n')`))
	t.Fatalf("dashboard: want %s within %v: %v\npage:\n%s\nconsole errors: %v", what, guard, err, state, problems)
}

// shot saves a screenshot of the whole page.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("PH_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err, "screenshot")
	p := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)
}

// postBacklog posts n temperature readings of the station, one a minute from start, to
// the cloud's ingest API as an agent would after an outage (seqs far above the test
// agent's own).
func postBacklog(t *testing.T, cloudURL, token string, start time.Time, n int) {
	t.Helper()
	b := &wire.Batch{V: wire.Version, Station: station, Agent: "e2e-backlog", SentAt: time.Now().UTC()}
	for i := range n {
		b.Readings = append(b.Readings, wire.Reading{Seq: uint64(1_000_000 + i), Time: start.Add(time.Duration(i) * time.Minute).UTC(),
			Sensor: "temp-backlog", Param: "temp", Value: 25 + float64(i)/10, Unit: "degC", Quality: "good", Source: "sensor"})
	}
	postBatch(t, cloudURL, token, b)
}

// postBatch posts b to the cloud's ingest API as an agent would, and requires a 200.
func postBatch(t *testing.T, cloudURL, token string, b *wire.Batch) {
	t.Helper()
	body, err := wire.Encode(b)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, cloudURL+"/v1/ingest", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", msg)
}
