package balena

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/deploy/internal/deploytest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
)

// station is one balena device, emulated: the image's files in a directory, /data in
// another, the device variables as the environment.
type station struct {
	t        *testing.T
	bin      string // the image's /usr/local/bin
	data     string // stands for /data
	listen   string
	env      map[string]string
	template string
}

// newStation prepares a device from the image: the template's /data paths point into the
// test's directory and its broker to a loopback port (tests never listen beyond it).
func newStation(t *testing.T, im *deploytest.Image) *station {
	dir, err := os.MkdirTemp("", "phb") // short: the admin socket's path must fit sun_path
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, os.RemoveAll(dir)) })
	s := &station{t: t, bin: im.Path("/usr/local/bin"), data: filepath.Join(dir, "data"),
		listen: testproc.FreeAddr(t, "tcp"), template: filepath.Join(dir, "agent.yaml.template")}
	require.NoError(t, os.Mkdir(s.data, 0o755))
	tmpl, err := os.ReadFile(im.Path("/usr/share/ph-agent/agent.yaml.template"))
	require.NoError(t, err)
	text := string(tmpl)
	for from, to := range map[string]string{"/data/": s.data + "/", `listen: "0.0.0.0:1883"`: `listen: "` + s.listen + `"`} {
		require.Contains(t, text, from, "the template changed: update readme_test.go")
		text = strings.ReplaceAll(text, from, to)
	}
	require.NoError(t, os.WriteFile(s.template, []byte(text), 0o644))

	// The image's environment and the fleet's defaults from balena.yml.
	s.env = map[string]string{}
	for _, kv := range im.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PH_") {
			s.env[k] = strings.Replace(v, "/data/", s.data+"/", 1)
		}
	}
	require.Equal(t, filepath.Join(s.data, "agent.yaml"), s.env["PH_CONFIG"], "the image's ENV PH_CONFIG")
	b, err := os.ReadFile("balena.yml")
	require.NoError(t, err)
	var fleet struct {
		Data struct {
			Env []map[string]string `yaml:"applicationEnvironmentVariables"`
		} `yaml:"data"`
	}
	require.NoError(t, yaml.Unmarshal(b, &fleet))
	for _, kv := range fleet.Data.Env {
		for k, v := range kv {
			s.env[k] = v
		}
	}
	return s
}

func (s *station) config() string { return filepath.Join(s.data, "agent.yaml") }

func (s *station) environ() []string {
	env := append(testproc.Env(), "PATH="+s.bin+":"+os.Getenv("PATH"),
		"PH_TEMPLATE="+s.template, "PH_TOKEN_FILE="+filepath.Join(s.data, "uplink.token"), "PH_RETRY_DELAY=0")
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return env
}

// sh runs a shell command line as the technician types it in the container, /data being
// the station's directory.
func (s *station) sh(line, stdin string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", strings.ReplaceAll(line, "/data/", s.data+"/"))
	cmd.Env, cmd.Stdin = s.environ(), strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startFails runs the entrypoint as balena would start the service and expects it to
// give up with a message containing want.
func (s *station) startFails(want string) {
	s.t.Helper()
	out, err := s.sh(filepath.Join(s.bin, "ph-entrypoint"), "")
	require.Error(s.t, err, "the entrypoint should refuse to start; it printed:\n%s", out)
	assert.Contains(s.t, out, want)
	_, err = os.Stat(s.config())
	assert.ErrorIs(s.t, err, os.ErrNotExist, "no configuration is installed")
	leftovers, _ := filepath.Glob(s.config() + ".*")
	assert.Empty(s.t, leftovers, "nothing half-written is left")
}

// start runs the entrypoint as the service and waits until the agent answers its CLI.
func (s *station) start(log string) *testproc.Daemon {
	s.t.Helper()
	d := testproc.NewDaemon(s.t, testproc.DaemonOptions{
		Name: "ph-entrypoint", Path: filepath.Join(s.bin, "ph-entrypoint"), Env: s.environ(),
		Log: log, Guard: guard,
		Ready: func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "ph-agent"), "status", "--config", s.config())
			return cmd.Run()
		},
	})
	d.Start(s.t)
	return d
}

// The deploy/balena README, step by step, on an image built from the staged context:
// what a fleet admin sets, what the first start does, what the technician types.
func TestBalenaReadmeSteps(t *testing.T) {
	mosquittoPub := testtool.LookPath(t, "mosquitto-clients", "mosquitto_pub")
	ctx, _ := stageContext(t)
	im := build(t, ctx, hostArch, composeArgs(t, ctx))
	s := newStation(t, im)
	log := filepath.Join(t.TempDir(), "entrypoint.log")

	// "Until its device variables are set the service logs which ones are missing."
	s.startFails("set the device variables PH_STATION_ID PH_STATION_CLASS PH_MQTT_PASSWORD_HASH")

	// "Make the password hash on any machine with a built agent."
	hashLine := ""
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if i := strings.Index(line, "`printf '%s' "); i >= 0 && strings.Contains(line, "ph-agent passwd`") {
			hashLine = line[i+1 : strings.Index(line[i+1:], "`")+i+1]
		}
	}
	require.NotEmpty(t, hashLine, "the README's password hash command")
	hashLine = strings.Replace(hashLine, "bin/ph-agent", "ph-agent", 1)
	hash, err := s.sh(hashLine, "")
	require.NoError(t, err, hash)
	hash = strings.TrimSpace(hash)
	require.Regexp(t, `^\$2[aby]\$`, hash)
	password := strings.Split(hashLine, "'")[3]

	// A device with an uplink URL and no token is refused; so is an invalid class, with
	// the agent's own explanation.
	s.env["PH_STATION_ID"], s.env["PH_STATION_CLASS"], s.env["PH_MQTT_PASSWORD_HASH"] = "MH-BALENA-001", "Z", hash
	s.env["PH_UPLINK_URL"] = "http://" + testproc.FreeAddr(t, "tcp") // a closed port: the cloud is away
	s.startFails("PH_UPLINK_URL is set but PH_UPLINK_TOKEN is not")
	s.env["PH_UPLINK_TOKEN"] = "token-one"
	s.startFails("station.class")
	s.env["PH_STATION_CLASS"] = "B"
	s.env["PH_STATION_NAME"] = "Mula-Mutha at Sangam's ghat | Pune & co"

	// The first start renders the configuration from the variables and runs the agent.
	agent := s.start(log)
	cfg, err := os.ReadFile(s.config())
	require.NoError(t, err)
	out, err := s.sh("ph-agent config check /data/agent.yaml", "")
	require.NoError(t, err, out)
	assert.Contains(t, out, "station MH-BALENA-001, class B")
	out, err = s.sh("ph-agent status --json --config /data/agent.yaml", "")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"Mula-Mutha at Sangam's ghat | Pune \u0026 co"`, "a name with quotes and sed's specials survives")
	token, err := os.ReadFile(filepath.Join(s.data, "uplink.token"))
	require.NoError(t, err)
	assert.Equal(t, "token-one\n", string(token))
	fi, err := os.Stat(filepath.Join(s.data, "uplink.token"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the token is readable by the agent only")

	// A probe publishes with the password whose hash was set.
	host, port, _ := strings.Cut(s.listen, ":")
	res := testproc.Run(t, guard, mosquittoPub, "-h", host, "-p", port, "-u", s.env["PH_MQTT_USER"], "-P", password,
		"-q", "1", "-t", "purehealth/MH-BALENA-001/ph", "-m", "7.31")
	require.Zero(t, res.Code, "a probe with the device's password publishes: %s", res.Stderr)
	out, err = s.sh("ph-agent readings --json --config /data/agent.yaml", "")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"value": 7.31`)

	// "Reaching the CLI": every command of the README's block answers.
	for _, line := range deploytest.ShellBlock(t, "README.md", "ph-agent status --config /data/agent.yaml") {
		if strings.HasPrefix(line, "balena ") {
			continue // from the technician's machine: the shell it opens is this one
		}
		out, err := s.sh(line, "")
		assert.NoError(t, err, "%s:\n%s", line, out)
	}
	agent.Stop(t) // SIGTERM reaches the agent itself (the entrypoint execs it): exit 0

	// Rotating the token is changing the variable: the next start writes it. The other
	// variables no longer touch the configuration, which belongs to the station now.
	s.env["PH_UPLINK_TOKEN"] = "token-two"
	s.env["PH_STATION_NAME"] = "Renamed"
	agent = s.start(log)
	token, err = os.ReadFile(filepath.Join(s.data, "uplink.token"))
	require.NoError(t, err)
	assert.Equal(t, "token-two\n", string(token))
	again, err := os.ReadFile(s.config())
	require.NoError(t, err)
	assert.Equal(t, string(cfg), string(again), "a restart does not re-render the configuration")

	// "To change the configuration, write the new file next to the old one, check it,
	// then swap it in and restart the service."
	for _, line := range deploytest.ShellBlock(t, "README.md", "ph-agent config check /data/agent.yaml.new") {
		out, err := s.sh(line, "")
		require.NoError(t, err, "%s:\n%s", line, out)
	}
	agent.Stop(t)
	agent = s.start(log)
	edited, err := os.ReadFile(s.config())
	require.NoError(t, err)
	assert.Contains(t, string(edited), "level: debug", "the edit is in place after the restart")
	agent.Stop(t)

	// "To render it again, delete it and restart the service."
	for _, line := range deploytest.ShellBlock(t, "README.md", "rm /data/agent.yaml") {
		if strings.HasPrefix(line, "balena ") || line == "exit" {
			continue
		}
		out, err := s.sh(line, "")
		require.NoError(t, err, "%s:\n%s", line, out)
	}
	agent = s.start(log)
	out, err = s.sh("ph-agent status --json --config /data/agent.yaml", "")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"Renamed"`, "rendered again from the current variables")
	out, err = s.sh("ph-agent readings --json --config /data/agent.yaml", "")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"value": 7.31`, "the buffer on /data outlives every restart and re-render")
	agent.Stop(t)
}
