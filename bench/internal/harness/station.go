package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/purehealth/purehealth/internal/testproc"
)

// Endpoint is one line `ph-sim station` prints when a simulated probe can be reached:
//
//	<probe> <kind> <params> <where>[ -> <device>]
//
// where is a resource URL, mqtt://<broker>, or a serial probe's link (followed by its
// pseudo-terminal) or, without a link, its pseudo-terminal.
type Endpoint struct {
	Probe  string
	Kind   string // serial, coap, http or mqtt
	Params []string
	Where  string
	Device string // a serial probe's pseudo-terminal, when Where is its link
}

// ParseEndpoint reads one line of `ph-sim station`'s output.
func ParseEndpoint(line string) (Endpoint, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 4:
	case len(f) == 6 && f[4] == "->":
	default:
		return Endpoint{}, fmt.Errorf("not an endpoint line of ph-sim station: %q", line)
	}
	e := Endpoint{Probe: f[0], Kind: f[1], Params: strings.Split(f[2], ","), Where: f[3]}
	if len(f) == 6 {
		e.Device = f[5]
	}
	switch {
	case e.Kind != "serial" && e.Kind != "coap" && e.Kind != "http" && e.Kind != "mqtt":
		return Endpoint{}, fmt.Errorf("endpoint line %q: unknown kind %q", line, e.Kind)
	case e.Kind != "serial" && (e.Device != "" || !strings.HasPrefix(e.Where, e.Kind+"://")):
		return Endpoint{}, fmt.Errorf("endpoint line %q: a %s endpoint is a %s:// URL", line, e.Kind, e.Kind)
	case slices.Contains(e.Params, ""):
		return Endpoint{}, fmt.Errorf("endpoint line %q: an empty parameter", line)
	}
	return e, nil
}

// Station is a running `ph-sim station`.
type Station struct {
	*Proc
	// Endpoints are the first lines it printed, in order: the ones StartStation waited for.
	Endpoints []Endpoint
}

// StartStation runs `bin station --scenario scenario` and returns once it has printed want
// endpoints (every probe is then reachable), or with an error holding the end of its log.
// Its standard error and every line of its standard output go to logPath. The caller must
// Stop it.
func StartStation(ctx context.Context, bin, scenario, logPath string, want int) (*Station, error) {
	lines := make(chan string, want)
	l, err := testproc.StartAnnounced(bin, logPath, nil, lines, "station", "--scenario", scenario, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	p := &Proc{l}
	s := &Station{Proc: p}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for len(s.Endpoints) < want {
		select {
		case line := <-lines:
			e, err := ParseEndpoint(line)
			if err != nil {
				return nil, errors.Join(err, p.Stop())
			}
			s.Endpoints = append(s.Endpoints, e)
		case <-p.Done():
			_, why := p.Exited()
			return nil, fmt.Errorf("ph-sim station exited after %d of %d endpoints (%v); its log ends:\n%s",
				len(s.Endpoints), want, why, p.LogTail(15))
		case <-timeout.C:
			return nil, errors.Join(fmt.Errorf("ph-sim station printed %d of %d endpoints in 60s; its log ends:\n%s",
				len(s.Endpoints), want, p.LogTail(15)), p.Stop())
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), p.Stop())
		}
	}
	return s, nil
}

// AgentProbe is one entry of the agent's probes list (design §7).
type AgentProbe struct {
	Name, Kind, Param string
	Device            string // serial
	URL               string // coap, http
	Observe           bool   // coap
	Interval          time.Duration
}

// probesYAML is the probes list of the agent's configuration.
func probesYAML(probes []AgentProbe) []byte {
	b := []byte("probes:\n")
	for _, p := range probes {
		b = fmt.Appendf(b, "  - {name: %s, kind: %s, param: %s, interval: %s",
			strconv.Quote(p.Name), strconv.Quote(p.Kind), strconv.Quote(p.Param), p.Interval)
		if p.Device != "" {
			b = fmt.Appendf(b, ", device: %s", strconv.Quote(p.Device))
		}
		if p.URL != "" {
			b = fmt.Appendf(b, ", url: %s", strconv.Quote(p.URL))
		}
		if p.Observe {
			b = append(b, ", observe: true"...)
		}
		b = append(b, "}\n"...)
	}
	return b
}

// StartAgentWithProbes is StartAgent with probes configured: the agent reads them itself.
func StartAgentWithProbes(ctx context.Context, bin string, cfg AgentConfig, probes []AgentProbe) (*Agent, error) {
	if err := os.MkdirAll(cfg.DataDir(), 0o750); err != nil {
		return nil, fmt.Errorf("agent data dir: %w", err)
	}
	yaml := append(cfg.YAML(), probesYAML(probes)...)
	if err := os.WriteFile(cfg.ConfigPath(), yaml, 0o640); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	p, err := start(bin, filepath.Join(cfg.Dir, "agent.log"), "run", "--config", cfg.ConfigPath())
	if err != nil {
		return nil, err
	}
	a := &Agent{Proc: p, bin: bin, config: cfg.ConfigPath()}
	if err := a.waitReady(ctx, 30*time.Second); err != nil {
		return nil, errors.Join(err, a.Stop())
	}
	return a, nil
}

// Sensor is the part of a row of `ph-agent sensors --json` (design §4) a benchmark checks.
type Sensor struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Param      string `json:"param"`
	Online     bool   `json:"online"`
	Readings   uint64 `json:"readings"`
	Errors     uint64 `json:"errors"`
	Reconnects uint64 `json:"reconnects"`
}

// Sensors runs `ph-agent sensors --config FILE --json` against the running agent.
func (a *Agent) Sensors(ctx context.Context) ([]Sensor, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, a.bin, "sensors", "--config", a.config, "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return nil, fmt.Errorf("ph-agent sensors: %w: %s", err, lastLine(ee.Stderr))
		}
		return nil, fmt.Errorf("ph-agent sensors: %w", err)
	}
	return ParseSensors(out)
}

// ParseSensors reads the output of `ph-agent sensors --json`.
func ParseSensors(b []byte) ([]Sensor, error) {
	var s struct {
		Sensors *[]Sensor `json:"sensors"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read agent sensors: %w", err)
	}
	if s.Sensors == nil {
		return nil, errors.New("read agent sensors: no sensors list: not the output of ph-agent sensors --json")
	}
	return *s.Sensors, nil
}
