package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CloudConfig is what a benchmark sets in ph-cloud's configuration; everything else is the
// service's default. Dir must exist; the configuration file and the log go in it.
type CloudConfig struct {
	Dir         string
	Listen      string // host:port of the HTTP API
	DatabaseURL string
	// RatePerStation and Burst are ingest.rate_per_station and ingest.burst: a benchmark
	// raises them so that the per-station limiter is not what it measures.
	RatePerStation float64
	Burst          int
	MaxInFlight    int   // ingest.max_in_flight; 0 = the default
	MaxConns       int32 // database.max_conns; 0 = the default
	LogLevel       string
}

// ConfigPath is where the configuration is written.
func (c CloudConfig) ConfigPath() string { return filepath.Join(c.Dir, "cloud.yaml") }

// URL is the service's base URL.
func (c CloudConfig) URL() string { return "http://" + c.Listen }

// YAML is the configuration file.
func (c CloudConfig) YAML() []byte {
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by the benchmark harness.\nlisten: %s\ndatabase_url: %s\nlog: {level: %s}\n",
		strconv.Quote(c.Listen), strconv.Quote(c.DatabaseURL), level)
	var ingest []string
	if c.RatePerStation > 0 {
		ingest = append(ingest, "rate_per_station: "+strconv.FormatFloat(c.RatePerStation, 'f', -1, 64))
	}
	if c.Burst > 0 {
		ingest = append(ingest, "burst: "+strconv.Itoa(c.Burst))
	}
	if c.MaxInFlight > 0 {
		ingest = append(ingest, "max_in_flight: "+strconv.Itoa(c.MaxInFlight))
	}
	if len(ingest) > 0 {
		fmt.Fprintf(&b, "ingest: {%s}\n", strings.Join(ingest, ", "))
	}
	if c.MaxConns > 0 {
		fmt.Fprintf(&b, "database: {max_conns: %d}\n", c.MaxConns)
	}
	return b.Bytes()
}

// Prepared is a cloud database ready for a run.
type Prepared struct {
	Tokens  []string // of the stations, in order
	Storage string   // what `ph-cloud migrate` said of the storage it chose, for the report
}

// PrepareCloud writes cfg's configuration, migrates the database with `bin migrate` and
// registers each station with `bin station add`, as an operator would.
func PrepareCloud(ctx context.Context, bin string, cfg CloudConfig, stations ...string) (Prepared, error) {
	if err := os.WriteFile(cfg.ConfigPath(), cfg.YAML(), 0o600); err != nil {
		return Prepared{}, fmt.Errorf("cloud config: %w", err)
	}
	out, err := cloudCommand(ctx, bin, "migrate", "--config", cfg.ConfigPath())
	if err != nil {
		return Prepared{}, err
	}
	storage, _, _ := strings.Cut(string(out), "\n")
	tokens := make([]string, 0, len(stations))
	for _, id := range stations {
		out, err := cloudCommand(ctx, bin, "station", "add", id, "--name", "benchmark "+id, "--config", cfg.ConfigPath())
		if err != nil {
			return Prepared{}, err
		}
		tok := strings.TrimSpace(string(out))
		if tok == "" || strings.ContainsAny(tok, " \n") {
			return Prepared{}, fmt.Errorf("ph-cloud station add %s: want the token alone on stdout, got %q", id, cut(out, 100))
		}
		tokens = append(tokens, tok)
	}
	return Prepared{Tokens: tokens, Storage: storage}, nil
}

func cloudCommand(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ph-cloud %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// Cloud is a running `ph-cloud serve`.
type Cloud struct {
	*Proc
	URL string // base URL, http://host:port
}

// StartCloud starts `bin serve` with the configuration PrepareCloud wrote and returns once
// /health answers 200. The caller must Stop it.
func StartCloud(ctx context.Context, bin string, cfg CloudConfig) (*Cloud, error) {
	p, err := start(bin, filepath.Join(cfg.Dir, "cloud.log"), "serve", "--config", cfg.ConfigPath())
	if err != nil {
		return nil, err
	}
	c := &Cloud{Proc: p, URL: cfg.URL()}
	if err := c.waitHealthy(ctx, 60*time.Second); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cloud) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		_, err := c.Health(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-c.Done():
			_, why := c.Exited()
			return fmt.Errorf("ph-cloud exited during start-up (%v); its log ends:\n%s", why, c.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("ph-cloud not healthy after %s (last: %w); its log ends:\n%s", limit, err, c.LogTail(15))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Health asks GET /health and returns its answer when it is 200.
func (c *Cloud) Health(ctx context.Context) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/health", nil)
	if err != nil {
		return Health{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Health{}, fmt.Errorf("GET /health: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Health{}, fmt.Errorf("GET /health: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Health{}, fmt.Errorf("GET /health: %s: %s", resp.Status, cut(bytes.TrimSpace(body), 200))
	}
	return ParseHealth(body)
}

// Health is the part of ph-cloud's /health answer a benchmark reads.
type Health struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	Database struct {
		Status  string `json:"status"`
		Storage string `json:"storage"`
		Conns   int32  `json:"conns"`
	} `json:"database"`
	Ingest IngestStats `json:"ingest"`
}

// IngestStats are the cloud's ingest counters since it started.
type IngestStats struct {
	Batches     int64            `json:"batches"`
	NewReadings int64            `json:"new_readings"`
	Duplicates  int64            `json:"duplicates"`
	Refused     map[string]int64 `json:"refused"` // by HTTP status
}

// ParseHealth reads a /health answer.
func ParseHealth(b []byte) (Health, error) {
	var h Health
	if err := json.Unmarshal(b, &h); err != nil {
		return Health{}, fmt.Errorf("read cloud health: %w", err)
	}
	if h.Status == "" || h.Version == "" {
		return Health{}, fmt.Errorf("read cloud health %q: no status or version: not ph-cloud's /health", cut(b, 200))
	}
	if h.Ingest.Batches < 0 || h.Ingest.NewReadings < 0 || h.Ingest.Duplicates < 0 {
		return Health{}, fmt.Errorf("read cloud health %q: negative counters", cut(b, 200))
	}
	return h, nil
}
