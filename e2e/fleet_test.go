package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/browsertest"
	"github.com/purehealth/purehealth/internal/pahotest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/shared/wire"
)

// healthOf is a health record of another station's agent, as it would send one.
func healthOf(version string, autonomyH float64, failing ...string) *wire.Health {
	h := &wire.Health{Time: time.Now().UTC(), Version: version, UptimeS: 86400, ClockSynced: true,
		Buffer:  wire.HealthBuffer{UsedBytes: 200 << 20, MaxBytes: 512 << 20, AutonomyH: &autonomyH},
		Backlog: 1200, Probes: wire.HealthProbes{Total: 3, Online: 3 - len(failing), Failing: []wire.FailingProbe{}},
		CalibrationDue: []wire.CalibrationDue{{Probe: "ph-1", Param: "ph", DueAt: time.Now().Add(-48 * time.Hour).UTC()}}}
	for _, f := range failing {
		h.Probes.Failing = append(h.Probes.Failing, wire.FailingProbe{Name: f, Reason: "offline: no reading for 12m0s"})
	}
	return h
}

// postHealth sends a station's health record to the cloud as its agent does: alone, in a
// batch of no records.
func postHealth(t *testing.T, c *cloud, station, token string, h *wire.Health) {
	t.Helper()
	postBatch(t, c.URL(), token, &wire.Batch{V: wire.Version, Station: station, Agent: h.Version, SentAt: time.Now().UTC(), Health: h})
}

// The fleet, end to end: a real ph-agent sends its health record every second through its
// uplink, other stations' records arrive as their agents would send them, and the Fleet
// page in headless Chromium lists every station in one table from GET /v1/fleet, sorts it
// by a column, highlights the station with under a day of autonomy and an older agent
// (with text as well as colour), and follows new records live over the WebSocket without
// a reload: the real agent's probe count, a station upgraded (no longer highlighted), and
// a newer version elsewhere making it lag again. ph-cloud fleet prints the same.
func TestFleetPage(t *testing.T) {
	ctx := browsertest.New(t, testDir(t))
	c := newCloud(t, pgtest.New(t))
	tokens := map[string]string{}
	for _, id := range []string{"MH-NASIK-001", "MH-KOLHAPUR-001", "MH-IDLE-001"} {
		tokens[id] = strings.TrimSpace(mustCmd(t, cloudBin(t), "station", "add", id, "--name", "Station "+id, "--config", c.Config))
	}
	c.serve.Start(t)
	a := newAgent(t, c.URL(), c.TokenFile, agentOptions{HealthInterval: time.Second})
	a.Start(t)
	postHealth(t, c, "MH-KOLHAPUR-001", tokens["MH-KOLHAPUR-001"], healthOf("v1.0.0", 300))
	postHealth(t, c, "MH-NASIK-001", tokens["MH-NASIK-001"], healthOf("v0.9.0", 12, "do-1"))

	// The contract, as an integrator reads it.
	resp, err := http.Get(c.URL() + "/v1/fleet")
	require.NoError(t, err)
	var fleet struct {
		Stations []map[string]json.RawMessage `json:"stations"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&fleet))
	require.NoError(t, resp.Body.Close())
	require.Len(t, fleet.Stations, 4)
	for _, s := range fleet.Stations {
		for _, k := range []string{"id", "last_seen", "version", "uptime_s", "clock_synced", "buffer", "backlog", "probes", "calibration_due"} {
			assert.Contains(t, s, k)
		}
	}

	console := browsertest.WatchConsole(ctx)
	defer console.Stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.URL()+"/#/fleet")))
	row := func(id string) string { return `document.querySelector('#fleet-rows tr[data-key="` + id + `"]')` }
	waitPage(t, ctx, console, "the dashboard goes LIVE", `document.querySelector('#conn').dataset.state === 'live'`)
	waitPage(t, ctx, console, "every station in the table", `document.querySelectorAll('#fleet-rows tr').length === 4`)
	waitPage(t, ctx, console, "only the fleet shown",
		`document.querySelector('#view-overview').hidden && document.querySelector('#view-station').hidden`)
	waitPage(t, ctx, console, "the real agent's record",
		row(station)+`?.querySelector('[data-col="version"]')?.textContent.startsWith('dev')`)
	waitPage(t, ctx, console, "a station that never reported says so",
		row("MH-IDLE-001")+`?.textContent.includes('No health record yet')`)
	waitPage(t, ctx, console, "Nasik highlighted for autonomy and version, in words",
		row("MH-NASIK-001")+`?.classList.contains('attention') && `+row("MH-NASIK-001")+`.textContent.includes('under a day') && `+
			row("MH-NASIK-001")+`.textContent.includes('behind v1.0.0') && `+row("MH-NASIK-001")+`.textContent.includes('do-1') && `+
			row("MH-NASIK-001")+`.querySelector('[data-col="calibration"]').textContent.includes('overdue')`)
	waitPage(t, ctx, console, "Kolhapur not highlighted", `!`+row("MH-KOLHAPUR-001")+`.classList.contains('attention')`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`)))
	shot(t, ctx, "fleet-desktop")

	// Sorting by autonomy: the lowest first, then the other way round.
	order := `[...document.querySelectorAll('#fleet-rows tr')].map((tr) => tr.dataset.key).join(',')`
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-col="autonomy"]`))))
	waitPage(t, ctx, console, "sorted by autonomy, lowest first",
		`document.querySelector('th[data-col="autonomy"]').getAttribute('aria-sort') === 'ascending' && `+order+`.startsWith('MH-NASIK-001,')`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-col="autonomy"]`))))
	waitPage(t, ctx, console, "sorted by autonomy, highest first, no record last",
		`document.querySelector('th[data-col="autonomy"]').getAttribute('aria-sort') === 'descending' && `+order+`.endsWith(',MH-IDLE-001')`)

	// Live: the real agent's next record counts the sensor that starts publishing.
	mq := pahotest.Connect(t, a.Listen, "fleet", guard)
	pahotest.PublishAcked(t, mq, a.Topic("temp"), "26.5", guard)
	waitPage(t, ctx, console, "the agent's new record, live",
		row(station)+`?.querySelector('[data-col="failing"]')?.textContent.includes('1/1 online')`)

	// Nasik upgraded, with room to spare: no longer highlighted.
	postHealth(t, c, "MH-NASIK-001", tokens["MH-NASIK-001"], healthOf("v1.0.0", 200))
	waitPage(t, ctx, console, "Nasik's new record, live and no longer highlighted",
		`!`+row("MH-NASIK-001")+`.classList.contains('attention') && `+row("MH-NASIK-001")+`.querySelector('[data-col="version"]').textContent === 'v1.0.0'`)
	// A newer agent elsewhere: Nasik lags again, though no record of its own came.
	postHealth(t, c, "MH-KOLHAPUR-001", tokens["MH-KOLHAPUR-001"], healthOf("v1.1.0", 300))
	waitPage(t, ctx, console, "Nasik behind the newest version",
		row("MH-NASIK-001")+`.classList.contains('attention') && `+row("MH-NASIK-001")+`.textContent.includes('behind v1.1.0')`)
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__sameDocument === true`))
	require.NoError(t, err)
	assert.True(t, same, "the page was reloaded; live updates must not need that")

	// The navigation leads back to the stations.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`nav.views a[href="#/"]`))))
	waitPage(t, ctx, console, "back on the overview", `!document.querySelector('#view-overview').hidden && document.querySelector('#view-fleet').hidden`)
	assert.Empty(t, console.Problems(), "the page logged errors")

	out := mustCmd(t, cloudBin(t), "fleet", "--config", c.Config)
	assert.Contains(t, out, "v1.0.0 (behind v1.1.0)", "ph-cloud fleet:\n%s", out)
	assert.Contains(t, out, "MH-IDLE-001", "ph-cloud fleet:\n%s", out)
	t.Logf("ph-cloud fleet:\n%s", out)
}
