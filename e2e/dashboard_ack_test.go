package e2e

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/browsertest"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
)

// With auth.require_viewer the dashboard asks for a token in a sign-in form and keeps it
// for the tab; an operator acknowledges an alert with the feed's Acknowledge button, the
// form asking for an operator token when the page has only a viewer's.
func TestDashboardSignInAndAcknowledge(t *testing.T) {
	ctx := browsertest.New(t, testDir(t))
	c := newCloud(t, pgtest.New(t))
	f, err := os.OpenFile(c.Config, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "auth: {require_viewer: true}\n")
	require.NoError(t, errors.Join(err, f.Close()))
	viewer := strings.TrimSpace(mustCmd(t, cloudBin(t), "token", "add", "watch", "--role", "viewer", "--config", c.Config))
	operator := strings.TrimSpace(mustCmd(t, cloudBin(t), "token", "add", "ops", "--role", "operator", "--config", c.Config))
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{})
	a.Start(t)
	mq := pahotest.Connect(t, a.Listen, "sys", guard)
	// DO below class B's 5 mg/L.
	for _, p := range []struct{ param, value string }{{"ph", "7.4"}, {"temp", "26"}, {"do", "2"}} {
		pahotest.PublishAcked(t, mq, a.Topic(p.param), p.value, guard)
	}

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.URL()+"/")))
	waitPage(t, ctx, nil, "the sign-in form", `document.querySelector('#signin').open === true`)
	shot(t, ctx, "dashboard-signin")
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#signin-token`), viewer)))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`))))
	waitPage(t, ctx, nil, "LIVE with the viewer token", `document.querySelector('#conn').dataset.state === 'live'`)
	waitPage(t, ctx, nil, "the token kept for the tab", `sessionStorage.getItem('purehealth.viewerToken') === '`+viewer+`'`)
	var doID uint64
	for _, al := range a.alerts(t) {
		if al.Rule == "threshold" && al.Param == "do" {
			doID = al.ID
		}
	}
	require.NotZero(t, doID, "a DO of 2 mg/L opens a threshold alert")
	alert := fmt.Sprintf(`document.querySelector('#active-alerts li[data-key="station/%s/%d"]')`, station, doID)
	waitPage(t, ctx, nil, "the low-oxygen alert in the feed with its Acknowledge button", alert+`?.querySelector('button.ack') != null`)

	// A viewer may not acknowledge: the form asks for an operator's token.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](alert+`.querySelector('button.ack').click()`)))
	waitPage(t, ctx, nil, "the form asking for an operator token",
		`document.querySelector('#signin').open === true && document.querySelector('#signin-why').textContent.includes('operator')`)
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#signin-token`), operator)))
	// From here on nothing is refused: the browser logs 401 and 403 answers as errors.
	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`))))
	waitPage(t, ctx, console, "the alert acknowledged by the operator, without its button",
		`(() => { const li = `+alert+`; return li && li.textContent.includes('acknowledged by ops') && !li.querySelector('button.ack'); })()`)
	shot(t, ctx, "dashboard-acknowledged")

	// The acknowledgement reaches the station with its next exchange.
	atStation := func() bool {
		for _, al := range a.alerts(t) {
			if al.Rule == "threshold" && al.Param == "do" {
				return al.State == "acknowledged" && al.AcknowledgedBy == "ops"
			}
		}
		return false
	}
	temp := 26.0 // changing, lest the probe look stuck
	until(t, "the acknowledgement at the station too", func() bool {
		temp += 0.01
		pahotest.PublishAcked(t, mq, a.Topic("temp"), fmt.Sprintf("%.2f", temp), guard)
		return atStation()
	})
	require.Empty(t, console.Problems(), "the page logged errors")
}
