package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/purehealth/purehealth/agent/internal/admin"
	"github.com/purehealth/purehealth/agent/internal/alerting"
	"github.com/purehealth/purehealth/agent/internal/config"
	"github.com/purehealth/purehealth/agent/internal/spool"
	"github.com/purehealth/purehealth/agent/internal/taskset"
	"github.com/purehealth/purehealth/shared/telemetry"
)

// probeServer answers an HTTP probe's GET with a fixed JSON reading.
func probeServer(t *testing.T, value float64, unit string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"value": %g, "unit": %q}`, value, unit)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// reloadFixture is a running daemon and the pieces of its configuration file.
type reloadFixture struct {
	d      *Daemon
	dir    string
	client *admin.Client
	turb   string // URL of a turbidity probe
	temp   string // URL of a temperature probe
}

// config writes and loads a configuration: the station's class, its probes (YAML list
// items), the max_clients of its broker (0: the default) and any other sections.
func (f *reloadFixture) config(t *testing.T, class, probes string, maxClients int, extra string) *config.Config {
	t.Helper()
	path := filepath.Join(f.dir, "agent.yaml")
	mqtt := `mqtt: {listen: "127.0.0.1:0", allow_anonymous: true}`
	if maxClients > 0 {
		mqtt = fmt.Sprintf(`mqtt: {listen: "127.0.0.1:0", allow_anonymous: true, max_clients: %d}`, maxClients)
	}
	require.NoError(t, os.WriteFile(path, []byte(`
station: {id: MH-D-004, class: `+class+`}
data_dir: `+filepath.Join(f.dir, "data")+`
admin_socket: `+filepath.Join(f.dir, "admin.sock")+`
`+mqtt+`
clock: {sync_check: none}
probes:
`+probes+extra), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return cfg
}

// startReloadFixture runs a daemon of class B with two HTTP probes: turb-1, answering,
// and dead-1, at a closed port; extra is added to its configuration.
func startReloadFixture(t *testing.T, extra string) *reloadFixture {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs last
	f := &reloadFixture{dir: t.TempDir(), turb: probeServer(t, 4.2, "NTU"), temp: probeServer(t, 26.5, "degC")}
	cfg := f.config(t, "B", `  - {name: turb-1, kind: http, url: "`+f.turb+`", param: turbidity, interval: 100ms}
  - {name: dead-1, kind: http, url: "http://127.0.0.1:1/x", param: ph, interval: 100ms, timeout: 50ms}
`, 0, extra)
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	f.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(guard):
			t.Fatal("Run did not return")
		}
	})
	f.client = admin.NewClient(cfg.AdminSocket)
	require.Eventually(t, func() bool {
		_, err := f.client.Status(t.Context())
		return err == nil
	}, guard, 10*time.Millisecond, "admin API up")
	return f
}

// readingsOf counts the stored readings of a sensor.
func (f *reloadFixture) readingsOf(t *testing.T, sensor string) int {
	t.Helper()
	rs, err := f.d.spool.Readings(spool.Query{Limit: 100000})
	require.NoError(t, err)
	n := 0
	for _, r := range rs {
		if r.Sensor == sensor {
			n++
		}
	}
	return n
}

func probeNames(t *testing.T, c *admin.Client) []string {
	t.Helper()
	ps, err := c.Probes(t.Context())
	require.NoError(t, err)
	var out []string
	for _, p := range ps.Probes {
		out = append(out, p.Name)
	}
	return out
}

// A reload in place: a probe removed stops (its alerts resolved), one added starts and
// its readings are stored, one unchanged runs on untouched, the new class judges the next
// reading, new hooks are in effect, and a changed key that needs a restart is named and
// kept as it was.
func TestReloadInPlace(t *testing.T) {
	f := startReloadFixture(t, "")
	ctx := t.Context()
	require.Eventually(t, func() bool { return f.readingsOf(t, "turb-1") > 0 }, guard, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(f.d.alerts.Active(), func(a alerting.Alert) bool { return a.Sensor == "dead-1" })
	}, guard, 10*time.Millisecond, "the dead probe's fault is raised")
	turbBefore := f.d.probes.all()[0].counts().Readings

	hookOut := filepath.Join(f.dir, "hook.out")
	cur := f.config(t, "A", `  - {name: turb-1, kind: http, url: "`+f.turb+`", param: turbidity, interval: 100ms}
  - {name: temp-1, kind: http, url: "`+f.temp+`", param: temp, interval: 100ms}
`, 7, `alerts:
  hooks: [{command: ["/bin/sh", "-c", "echo $PH_ALERT_RULE >> `+hookOut+`"]}]
`)
	res, err := f.d.Reload(ctx, cur)
	require.NoError(t, err)
	assert.Equal(t, []string{"alerts.hooks", "probes", "station.class"}, res.Applied)
	assert.Equal(t, []string{"mqtt.max_clients"}, res.RestartNeeded)
	assert.Equal(t, taskset.Changes{Added: []string{"temp-1"}, Removed: []string{"dead-1"}}, res.Probes)

	assert.Equal(t, []string{"turb-1", "temp-1"}, probeNames(t, f.client))
	require.Eventually(t, func() bool { return f.readingsOf(t, "temp-1") > 0 }, guard, 10*time.Millisecond,
		"the added probe's readings are stored")
	assert.False(t, slices.ContainsFunc(f.d.alerts.Active(), func(a alerting.Alert) bool { return a.Sensor == "dead-1" }),
		"the removed probe's alerts are resolved")
	sensors, err := f.client.Sensors(ctx)
	require.NoError(t, err)
	assert.False(t, slices.ContainsFunc(sensors.Sensors, func(s admin.Sensor) bool { return s.Name == "dead-1" }))
	assert.GreaterOrEqual(t, f.d.probes.all()[0].counts().Readings, turbBefore, "the unchanged probe kept its counts")

	// Class A wants DO ≥ 6 where class B wanted 5; the new hook runs for the alert.
	_, err = f.d.pipeline.Ingest(ctx, []telemetry.Observation{{Sensor: "do-x", Param: "do", Value: 5.5, Unit: "mg/L"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(f.d.alerts.Active(), func(a alerting.Alert) bool { return a.Key == "threshold:cpcb-class-A:do:min" })
	}, guard, 10*time.Millisecond, "the new class judges the next reading")
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(hookOut)
		return err == nil && strings.Contains(string(b), "threshold")
	}, guard, 10*time.Millisecond, "the new hook ran")

	st, err := f.client.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "A", st.Class)
	require.NotNil(t, st.Config)
	assert.Equal(t, uint64(1), st.Config.Reloads)
	assert.Equal(t, []string{"mqtt.max_clients"}, st.Config.RestartNeeded)
	assert.Equal(t, int64(1000), int64(f.d.conf().MQTT.MaxClients), "the running agent keeps a key that needs a restart")
}

// A reload that cannot be applied changes nothing and says why: here three probes where
// the running sensors.max (which needs a restart) allows two.
func TestReloadRefusedChangesNothing(t *testing.T) {
	f := startReloadFixture(t, "sensors: {max: 2}\n")
	cur := f.config(t, "C", `  - {name: turb-1, kind: http, url: "`+f.turb+`", param: turbidity, interval: 100ms}
  - {name: dead-1, kind: http, url: "http://127.0.0.1:1/x", param: ph, interval: 100ms, timeout: 50ms}
  - {name: temp-1, kind: http, url: "`+f.temp+`", param: temp}
`, 0, "sensors: {max: 3}\n")
	_, err := f.d.Reload(t.Context(), cur)
	require.ErrorIs(t, err, ErrReload)
	assert.Contains(t, err.Error(), "sensors.max")
	assert.Equal(t, []string{"turb-1", "dead-1"}, probeNames(t, f.client))
	st, err := f.client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "B", st.Class, "nothing of a refused reload is applied")
	require.NotNil(t, st.Config)
	assert.Contains(t, st.Config.LastError, "sensors.max")
	assert.Equal(t, uint64(1), st.Config.Failed)
	assert.Zero(t, st.Config.Reloads)
}

// ReloadFrom with a file that does not load: refused, logged, counted.
func TestReloadFromBrokenFile(t *testing.T) {
	f := startReloadFixture(t, "")
	path := filepath.Join(f.dir, "broken.yaml")
	require.NoError(t, os.WriteFile(path, []byte("station: {id: x, colour: red}\n"), 0o600))
	f.d.ReloadFrom(t.Context(), path)
	st, err := f.client.Status(t.Context())
	require.NoError(t, err)
	require.NotNil(t, st.Config)
	assert.Equal(t, uint64(1), st.Config.Failed)
	assert.Contains(t, st.Config.LastError, "colour")
	assert.Equal(t, []string{"turb-1", "dead-1"}, probeNames(t, f.client))
}
