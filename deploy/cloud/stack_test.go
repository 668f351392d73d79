package cloud

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/deploy/internal/deploytest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
	"github.com/purehealth/purehealth/shared/alert"
	"github.com/purehealth/purehealth/shared/wire"
)

// compose is the part of docker-compose.yml the tests read.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func readCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
}

// mountSource returns the host path a service mounts at target, relative to this
// directory, or "".
func (c compose) mountSource(service, target string) string {
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	return ""
}

// datasource is the provisioned Grafana data source.
type datasource struct {
	UID      string `yaml:"uid"`
	Type     string `yaml:"type"`
	URL      string `yaml:"url"`
	User     string `yaml:"user"`
	JSONData struct {
		Database    string `yaml:"database"`
		SSLMode     string `yaml:"sslmode"`
		TimescaleDB bool   `yaml:"timescaledb"`
	} `yaml:"jsonData"`
	SecureJSONData struct {
		Password string `yaml:"password"`
	} `yaml:"secureJsonData"`
}

func readDatasource(t *testing.T) datasource {
	t.Helper()
	b, err := os.ReadFile("grafana/provisioning/datasources/ph-cloud.yaml")
	require.NoError(t, err)
	var f struct {
		APIVersion  int          `yaml:"apiVersion"`
		Datasources []datasource `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	require.Equal(t, 1, f.APIVersion)
	require.Len(t, f.Datasources, 1)
	return f.Datasources[0]
}

var fileSecretRe = regexp.MustCompile(`^\$__file\{/run/secrets/([A-Za-z0-9_.-]+)\}$`)

// host is this machine standing in for the compose project: secrets/ under dir, the
// database on a throwaway server, ph-cloud from the image built from the staged context.
type host struct {
	t       *testing.T
	dir     string // deploy/cloud as the operator has it: secrets/, token files
	compose compose
	im      *deploytest.Image
	pg      *url.URL // the database, as the superuser
	listen  string   // ph-cloud's
	config  string   // cloud.yaml as mounted
}

// secretPath maps a container's /run/secrets/NAME to the file compose mounts there.
func (h *host) secretPath(containerPath string) string {
	name, ok := strings.CutPrefix(containerPath, "/run/secrets/")
	require.True(h.t, ok, "%s is not a compose secret", containerPath)
	sec, ok := h.compose.Secrets[name]
	require.True(h.t, ok, "no top-level secret %s", name)
	return filepath.Join(h.dir, filepath.FromSlash(sec.File))
}

// serviceEnv returns a service's environment from the compose file, with paths of its
// secrets and mounts mapped to this machine.
func (h *host) serviceEnv(service string) []string {
	var env []string
	for k, v := range h.compose.Services[service].Environment {
		if strings.HasPrefix(v, "/run/secrets/") {
			v = h.secretPath(v)
		}
		env = append(env, k+"="+v)
	}
	return env
}

// sh runs a shell line of the README in the operator's directory, with docker compose
// standing for what it would run.
func (h *host) sh(line string, env ...string) (string, error) {
	h.t.Helper()
	entry := h.im.Path(h.im.Entrypoint[0])
	line = strings.ReplaceAll(line, "docker compose run --rm -T ph-cloud", entry)
	line = strings.ReplaceAll(line, "http://localhost:8080", "http://"+h.listen)
	require.NotContains(h.t, line, "docker", "a README step this test does not know how to stand in for: %s", line)
	ctx, cancel := context.WithTimeout(h.t.Context(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", line)
	cmd.Dir = h.dir
	cmd.Env = append(append(testproc.Env(), h.cloudEnv()...), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		return stderr.String(), fmt.Errorf("%s: %w\n%s", line, err, stderr.String())
	}
	return stderr.String(), nil
}

// cloudEnv is the ph-cloud container's environment: the image's, the compose file's,
// with the configuration where compose mounts it and the image's programs on PATH.
func (h *host) cloudEnv() []string {
	env := []string{"PATH=" + h.im.Path("/usr/local/bin") + ":" + os.Getenv("PATH")}
	for _, kv := range h.im.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "PH_CLOUD_CONFIG" {
			kv = k + "=" + h.config
		}
		env = append(env, kv)
	}
	return append(env, h.serviceEnv("ph-cloud")...)
}

// The README, step by step, with the image built from the staged context on a throwaway
// PostgreSQL: secrets, the database's first start, ph-cloud through its entrypoint, the
// health check, stations, then data from agents and the Grafana dashboard over it.
func TestCloudStack(t *testing.T) {
	testtool.LookPath(t, "wget", "wget") // the health check's client (busybox's in the image)
	h := &host{t: t, dir: t.TempDir(), compose: readCompose(t), im: buildImage(t, stageContext(t), runtime.GOARCH)}

	// 1. The secrets. The block runs as one script (its loop spans lines), in the test's
	// directory, which stands for deploy/cloud.
	var script []string
	for _, line := range deploytest.ShellBlock(t, "README.md", "mkdir -m 700 secrets") {
		if !strings.HasPrefix(line, "cd ") {
			script = append(script, line)
		}
	}
	out, err := h.sh(strings.Join(script, "\n"))
	require.NoError(t, err, out)
	for name, sec := range h.compose.Secrets {
		b, err := os.ReadFile(filepath.Join(h.dir, sec.File))
		require.NoError(t, err, "the README makes the secret %s", name)
		assert.Regexp(t, `^[0-9a-f]{48}$`, string(b), "secret %s: 24 random bytes in hex", name)
	}
	fi, err := os.Stat(filepath.Join(h.dir, "secrets"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "secrets/ is the operator's alone")

	// 2. The database's first start: a fresh server (the script makes cluster-wide roles),
	// and the script as the postgres image runs it, as the superuser on POSTGRES_DB.
	// With TimescaleDB installed here, the server loads it as the compose file's db does.
	settings, err := pgtest.TimescaleSettings()
	if err != nil {
		t.Logf("%v: the plain layout is deployed", err)
	}
	srv := pgtest.Start(t, settings...)
	pgURL, err := url.Parse(srv.CreateDB(t))
	require.NoError(t, err)
	h.pg = pgURL
	dbName := strings.TrimPrefix(pgURL.Path, "/")
	psql, err := pgtest.Tool("psql")
	require.NoError(t, err)
	initEnv := append(testproc.Env(), h.serviceEnv("db")...)
	initEnv = append(initEnv, "POSTGRES_USER="+pgURL.User.Username(), "POSTGRES_DB="+dbName,
		"PGHOST="+pgURL.Hostname(), "PGPORT="+pgURL.Port(), "PATH="+filepath.Dir(psql)+":"+os.Getenv("PATH"))
	var scripts []string
	for _, v := range h.compose.Services["db"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[1], "/docker-entrypoint-initdb.d/") {
			require.True(t, strings.HasSuffix(parts[1], ".sh"), "%s: the postgres image runs *.sh and *.sql files", v)
			scripts = append(scripts, parts[0])
		}
	}
	require.NotEmpty(t, scripts, "the db service mounts its first-start script")
	for _, s := range scripts {
		fi, err := os.Stat(s)
		require.NoError(t, err)
		require.NotZero(t, fi.Mode()&0o111, "%s must be executable: the postgres image sources other scripts, where $0 is its own", s)
		cmd := exec.CommandContext(t.Context(), s)
		cmd.Env = initEnv
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", s, out)
	}
	super := connect(t, pgURL.String())
	for role, secret := range map[string]string{"purehealth": "db_password", "grafana_reader": "grafana_db_password"} {
		var verifier string
		require.NoError(t, super.QueryRow(t.Context(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1 AND rolcanlogin", role).Scan(&verifier), role)
		pw, err := os.ReadFile(filepath.Join(h.dir, h.compose.Secrets[secret].File))
		require.NoError(t, err)
		ok, err := scramMatches(verifier, string(pw))
		require.NoError(t, err)
		assert.True(t, ok, "role %s has the password of the secret %s", role, secret)
		ok, err = scramMatches(verifier, string(pw)+"x")
		require.NoError(t, err)
		assert.False(t, ok, "and no other")
	}
	var timescale bool
	require.NoError(t, super.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')").Scan(&timescale))

	// 3. ph-cloud as compose runs it: cloud.yaml mounted, pointing at this database.
	h.listen = testproc.FreeAddr(t, "tcp")
	cfg, err := os.ReadFile(h.compose.mountSource("ph-cloud", "/etc/ph-cloud/cloud.yaml"))
	require.NoError(t, err)
	text := string(cfg)
	for from, to := range map[string]string{
		`listen: "0.0.0.0:` + listenPort(t) + `"`: `listen: "` + h.listen + `"`,
		"@db:5432/purehealth?":                    "@" + pgURL.Host + "/" + dbName + "?",
		"mode: timescaledb":                       "mode: " + map[bool]string{true: "timescaledb", false: "plain"}[timescale],
	} {
		require.Contains(t, text, from, "cloud.yaml changed: update stack_test.go")
		text = strings.ReplaceAll(text, from, to)
	}
	if !timescale {
		t.Log("this PostgreSQL has no TimescaleDB: the plain layout, same tables and queries")
	}
	h.config = filepath.Join(h.dir, "cloud.yaml")
	require.NoError(t, os.WriteFile(h.config, []byte(text), 0o644))
	base := "http://" + h.listen
	cloud := testproc.NewDaemon(t, testproc.DaemonOptions{
		Name: "ph-cloud-entrypoint", Path: h.im.Path(h.im.Entrypoint[0]), Args: h.im.Cmd,
		Env: append(testproc.Env(), h.cloudEnv()...), Log: filepath.Join(h.dir, "ph-cloud.log"), Guard: guard,
		Ready: func(ctx context.Context) error { return healthy(ctx, base) },
	})
	cloud.Start(t)
	log, err := os.ReadFile(filepath.Join(h.dir, "ph-cloud.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "storage: "+map[bool]string{true: "timescaledb", false: "plain"}[timescale], "the entrypoint migrated first")

	// The image's health check, on the test's port; and README's curl.
	health := strings.ReplaceAll(h.im.Health.Shell, "127.0.0.1:"+listenPort(t), h.listen)
	res := testproc.Run(t, guard, "sh", "-c", health)
	assert.Zero(t, res.Code, "the HEALTHCHECK passes while the service and database are up: %s", res.Stderr)
	for _, line := range deploytest.ShellBlock(t, "README.md", "/health") {
		if strings.HasPrefix(line, "curl ") {
			out, err := h.sh(line)
			require.NoError(t, err, out)
		}
	}

	// 4. Stations, with the README's commands.
	tokens := map[string]string{}
	out, err = h.sh(strings.Join(deploytest.ShellBlock(t, "README.md", "station add"), "\n"))
	require.NoError(t, err, out)
	addLine := ""
	for _, line := range deploytest.ShellBlock(t, "README.md", "station add") {
		if strings.Contains(line, "station add MH-PUNE-001") {
			addLine = line
		}
	}
	require.NotEmpty(t, addLine)
	out, err = h.sh(strings.ReplaceAll(addLine, "MH-PUNE-001", "MH-NASHIK-002"))
	require.NoError(t, err, out)
	for _, id := range []string{"MH-PUNE-001", "MH-NASHIK-002"} {
		b, err := os.ReadFile(filepath.Join(h.dir, "secrets", id+".token"))
		require.NoError(t, err)
		tokens[id] = strings.TrimSpace(string(b))
		require.Regexp(t, `^\S{20,}$`, tokens[id], "the token alone on stdout")
	}

	// Agents deliver two days of readings, WQI and alerts.
	now := time.Now().UTC().Truncate(time.Second)
	for id, token := range tokens {
		for _, b := range agentBatches(id, now) {
			postBatch(t, base, token, b)
		}
	}

	// 5. Grafana: the provisioned data source, as the role it names, with its password
	// from the secret it names.
	ds := readDatasource(t)
	m := fileSecretRe.FindStringSubmatch(ds.SecureJSONData.Password)
	require.NotNil(t, m, "the data source's password is a compose secret")
	pw, err := os.ReadFile(h.secretPath("/run/secrets/" + m[1]))
	require.NoError(t, err)
	require.Equal(t, "db:5432", ds.URL, "the data source reaches the db service")
	require.Equal(t, "purehealth", ds.JSONData.Database)
	readerURL := &url.URL{Scheme: "postgres", User: url.UserPassword(ds.User, strings.TrimSpace(string(pw))),
		Host: pgURL.Host, Path: "/" + dbName, RawQuery: "sslmode=" + ds.JSONData.SSLMode}
	dash := loadDashboard(t, "grafana/dashboards/ph-cloud.json")

	t.Run("dashboard as "+ds.User, func(t *testing.T) {
		reader := connect(t, readerURL.String())
		run := runDashboard(t, reader, dash, ds.UID, time.Now())
		checkDashboardData(t, run)
		checkReadOnly(t, reader)
	})

	t.Run("dashboard as a role made with the README's SQL", func(t *testing.T) {
		var block string
		b, err := os.ReadFile("README.md")
		require.NoError(t, err)
		for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
			if strings.Contains(m[1], "CREATE ROLE grafana_reader") {
				block = m[1]
			}
		}
		require.NotEmpty(t, block, "the README's SQL for a read-only role")
		// The cluster has grafana_reader already, from the first-start script.
		block = strings.ReplaceAll(block, "grafana_reader", "grafana_reader_manual")
		_, err = super.Exec(t.Context(), block)
		require.NoError(t, err, block)
		u := *readerURL
		u.User = url.User("grafana_reader_manual")
		reader := connect(t, u.String())
		run := runDashboard(t, reader, dash, ds.UID, time.Now())
		checkDashboardData(t, run)
		checkReadOnly(t, reader)
	})

	// Stopped, the service fails its health check.
	cloud.Stop(t)
	res = testproc.Run(t, guard, "sh", "-c", health)
	assert.NotZero(t, res.Code, "the HEALTHCHECK fails once the service is gone")
}

// checkDashboardData checks what some panels show against what the agents sent.
func checkDashboardData(t *testing.T, run *dashboardRun) {
	t.Helper()
	byTitle := func(title string) result {
		t.Helper()
		for where, rs := range run.results {
			if strings.Contains(where, fmt.Sprintf("%q", title)) {
				require.Len(t, rs, 1, where)
				return rs[0]
			}
		}
		require.Failf(t, "no panel", "%q", title)
		return result{}
	}
	col := func(r result, name string) []any {
		i := -1
		for j, c := range r.columns {
			if c == name {
				i = j
			}
		}
		require.GreaterOrEqual(t, i, 0, "column %s in %v", name, r.columns)
		var out []any
		for _, row := range r.rows {
			out = append(out, row[i])
		}
		return out
	}
	assert.ElementsMatch(t, []any{"MH-PUNE-001", "MH-NASHIK-002"}, col(byTitle("Stations"), "station"))
	assert.ElementsMatch(t, []any{"test-agent", "test-agent"}, col(byTitle("Stations"), "agent"))
	alerts := byTitle("Active alerts")
	assert.ElementsMatch(t, []any{"DO below 5 mg/L", "DO below 5 mg/L"}, col(alerts, "message"), "the open alert of each station, not the resolved one")
	assert.ElementsMatch(t, []any{"MH-PUNE-001", "MH-NASHIK-002"}, col(byTitle("Latest WQI"), "station"))
	assert.Equal(t, []string{"station", "param"}, func() []string {
		var names []string
		for _, v := range run.dash.Templating.List {
			names = append(names, v.Name)
		}
		return names
	}())
	assert.ElementsMatch(t, []string{"do", "ph", "temp", "turbidity"}, run.env.vars["param"].values)
}

// checkReadOnly checks that a Grafana role cannot change anything.
func checkReadOnly(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, sql := range []string{
		"DELETE FROM alerts",
		"UPDATE stations SET name = 'x'",
		"CREATE TABLE grafana_was_here (x int)",
		"SET default_transaction_read_only = off; DELETE FROM alerts",
	} {
		_, err := conn.Exec(t.Context(), sql)
		assert.Error(t, err, "%s must fail for Grafana's role", sql)
	}
	var timeout string
	require.NoError(t, conn.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&timeout))
	assert.Equal(t, "30s", timeout)
}

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	require.NoError(t, err, "connect")
	t.Cleanup(func() { assert.NoError(t, conn.Close(context.Background())) })
	return conn
}

func healthy(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/health: %s", resp.Status)
	}
	return nil
}

// agentBatches returns what a station's agent sends over two days up to now: a reading
// of each of four parameters every 10 minutes (every seventh bad, which the rollups
// leave out), an hourly WQI, and two alerts, one of them resolved. In batches of at most
// 1000 records, in seq order, as the agent sends them.
func agentBatches(station string, now time.Time) []*wire.Batch {
	params := []struct {
		param, unit string
		base        float64
	}{{"ph", "pH", 7.2}, {"do", "mg/L", 6.5}, {"temp", "degC", 26}, {"turbidity", "NTU", 12}}
	start := now.Add(-48 * time.Hour)
	var seq uint64
	next := func() uint64 { seq++; return seq }
	batch := func() *wire.Batch {
		return &wire.Batch{V: wire.Version, Station: station, Agent: "test-agent", SentAt: now}
	}
	var out []*wire.Batch
	b := batch()
	flush := func() {
		if len(b.Readings)+len(b.WQI)+len(b.Alerts) > 0 {
			out = append(out, b)
			b = batch()
		}
	}
	for at := start; !at.After(now); at = at.Add(10 * time.Minute) {
		for i, p := range params {
			q := "good"
			s := next()
			if s%7 == 0 {
				q = "bad"
			}
			b.Readings = append(b.Readings, wire.Reading{Seq: s, Time: at, Sensor: p.param + "-1", Param: p.param,
				Value: p.base + float64((s+uint64(i))%13)/10, Unit: p.unit, Quality: q, Source: "sensor"})
		}
		if at.Minute() < 10 {
			sat := 81.5
			b.WQI = append(b.WQI, wire.WQIPoint{Seq: next(), Time: at, WQI: 60 + float64(at.Hour()%10), Class: "B",
				Category: "Medium to Good", Partial: true, Missing: []string{"fc"},
				SubIndices: map[string]float64{"do": 70.1, "ph": 90.2, "bod": 60}, DOSaturationPct: &sat})
		}
		if len(b.Readings) >= 900 {
			flush()
		}
	}
	v, lim := 4.1, 5.0
	transitionOf := func(id uint64, transition, state string, at, opened time.Time) wire.AlertEvent {
		ev := wire.AlertEvent{Seq: next(), Transition: transition, Time: at, Record: alert.Record{ID: id,
			Rule: "threshold", Key: "threshold/do", Param: "do", Sensor: "do-1", Severity: alert.Warning,
			State: alert.State(state), OpenedAt: opened, Message: "DO below 5 mg/L", Value: &v, Limit: &lim}}
		if state == "resolved" {
			ev.ResolvedAt = &at
			ev.Message = "DO back above 5 mg/L"
		}
		return ev
	}
	first, second := now.Add(-30*time.Hour), now.Add(-2*time.Hour)
	b.Alerts = append(b.Alerts, transitionOf(1, "opened", "active", first, first),
		transitionOf(1, "resolved", "resolved", first.Add(time.Hour), first),
		transitionOf(2, "opened", "active", second, second))
	flush()
	return out
}

// postBatch sends a batch to the ingest API as an agent does.
func postBatch(t *testing.T, base, token string, b *wire.Batch) {
	t.Helper()
	body, err := wire.Encode(b)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/ingest", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	msg, err := io.ReadAll(resp.Body)
	require.NoError(t, errors.Join(err, resp.Body.Close()))
	require.Equal(t, http.StatusOK, resp.StatusCode, "ingest %s: %s", b.Station, msg)
}

// scramMatches reports whether password is the one a PostgreSQL SCRAM-SHA-256 verifier
// (pg_authid.rolpassword) was made from: "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
// <ServerKey>", where StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")) and
// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations) (RFC 5802 §3, RFC 7677).
// Passwords here are ASCII, which SASLprep leaves as they are.
func scramMatches(verifier, password string) (bool, error) {
	m := regexp.MustCompile(`^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$`).FindStringSubmatch(verifier)
	if m == nil {
		return false, fmt.Errorf("not a SCRAM-SHA-256 verifier: %.20q...", verifier)
	}
	iter, err := strconv.Atoi(m[1])
	if err != nil {
		return false, err
	}
	salt, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		return false, fmt.Errorf("salt: %w", err)
	}
	stored, err := base64.StdEncoding.DecodeString(m[3])
	if err != nil {
		return false, fmt.Errorf("stored key: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return false, err
	}
	mac := hmac.New(sha256.New, salted)
	mac.Write([]byte("Client Key"))
	clientKey := sha256.Sum256(mac.Sum(nil))
	return hmac.Equal(clientKey[:], stored), nil
}
