package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
)

// guard bounds every wait; it only turns a hang into a failure.
const guard = 30 * time.Second

var bins testproc.Builder

func TestMain(m *testing.M) { os.Exit(testproc.Main(&bins, m.Run)) }

// repoRoot is where the packaged files come from.
const repoRoot = "../.."

func agentBin(t testing.TB) string {
	t.Helper()
	return bins.Binary(t, "ph-agent", "github.com/purehealth/purehealth/agent", testproc.Race)
}

func TestDebVersion(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "v1.2.3", want: "1.2.3"},
		{in: "1.2.3", want: "1.2.3"},
		{in: "v1.2.3-dirty", want: "1.2.3+dirty"},
		{in: "v1.2.3-14-g4be2680", want: "1.2.3+14.g4be2680"},
		{in: "v1.2.3-14-g4be2680-dirty", want: "1.2.3+14.g4be2680.dirty"},
		{in: "v1.3.0-rc.1", want: "1.3.0~rc.1"},
		{in: "v1.3.0-rc.1-2-gabcdef0", want: "1.3.0~rc.1+2.gabcdef0"},
		{in: "v1.3.0-rc1-dirty", want: "1.3.0~rc1+dirty"},
		{in: "4be2680", want: "0.0.0+g4be2680"},
		{in: "4be2680-dirty", want: "0.0.0+g4be2680.dirty"},
		{in: "", err: "neither"},
		{in: "dev", err: "neither"},
		{in: "v1.2", err: "neither"},
		{in: "v1.2.3; rm -rf /", err: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := debVersion(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// Each later version sorts after the one before it for dpkg itself.
func TestDebVersionsSortAsReleasesFollow(t *testing.T) {
	dpkg := testtool.LookPath(t, "dpkg", "dpkg")
	order := []string{"v1.2.3-rc.1", "v1.2.3-rc.1-3-gabcdef0", "v1.2.3", "v1.2.3-1-gabcdef0",
		"v1.2.3-12-g0123456", "v1.2.4"}
	for i := 1; i < len(order); i++ {
		a, err := debVersion(order[i-1])
		require.NoError(t, err)
		b, err := debVersion(order[i])
		require.NoError(t, err)
		res := testproc.Run(t, guard, dpkg, "--compare-versions", a, "lt", b)
		assert.Zero(t, res.Code, "dpkg should sort %s (%s) before %s (%s)", a, order[i-1], b, order[i])
	}
}

// entry is one line of `dpkg-deb -c`.
type entry struct{ mode, owner string }

var listLine = regexp.MustCompile(`^(\S+) (\S+)\s+\d+ \S+ \S+ \./(.*)$`)

func listing(t *testing.T, dpkgDeb, deb string) map[string]entry {
	t.Helper()
	res := testproc.Run(t, guard, dpkgDeb, "-c", deb)
	require.Zero(t, res.Code, "dpkg-deb -c: %s", res.Stderr)
	out := map[string]entry{}
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		m := listLine.FindStringSubmatch(sc.Text())
		require.NotNil(t, m, "unexpected dpkg-deb -c line %q", sc.Text())
		out["/"+strings.TrimSuffix(m[3], "/")] = entry{m[1], m[2]}
	}
	return out
}

// The packages hold exactly the agent, its conffile, the unit and the docs, with the
// right modes, the control fields dpkg needs, and the maintainer scripts of this
// directory; the same sources give the same bytes.
func TestPackages(t *testing.T) {
	dpkgDeb := testtool.LookPath(t, "dpkg", "dpkg-deb")
	bin := t.TempDir()
	for _, tg := range targets {
		// Stand-ins for the cross-compiled agents: the installed package's binary is run
		// by `make deb-check`; here what matters is that each architecture gets its own.
		require.NoError(t, os.WriteFile(filepath.Join(bin, tg.binary), []byte("agent for "+tg.arch), 0o755))
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	build := func(out string, extra ...string) []string {
		var stdout bytes.Buffer
		args := append([]string{"-version", "v1.4.0-3-g4be2680", "-root", repoRoot, "-bin", bin, "-out", out}, extra...)
		require.NoError(t, run(t.Context(), args, &stdout))
		return strings.Fields(stdout.String())
	}
	out := t.TempDir()
	debs := build(out)
	require.Len(t, debs, 3)

	for i, tg := range targets {
		deb := debs[i]
		t.Run(tg.arch, func(t *testing.T) {
			assert.Equal(t, filepath.Join(out, "ph-agent_1.4.0+3.g4be2680_"+tg.arch+".deb"), deb)
			for field, want := range map[string]string{
				"Package": "ph-agent", "Version": "1.4.0+3.g4be2680", "Architecture": tg.arch,
				"Depends": "adduser", "Section": "misc", "Priority": "optional",
			} {
				res := testproc.Run(t, guard, dpkgDeb, "-f", deb, field)
				require.Zero(t, res.Code, res.Stderr)
				assert.Equal(t, want, strings.TrimSpace(res.Stdout), "control field %s", field)
			}
			res := testproc.Run(t, guard, dpkgDeb, "-f", deb, "Maintainer", "Description")
			assert.Contains(t, res.Stdout, "Maintainer: Pure Health")
			assert.Contains(t, res.Stdout, "Description: Pure Health river station agent")

			files := map[string]entry{}
			for path, e := range listing(t, dpkgDeb, deb) {
				if !strings.HasPrefix(e.mode, "d") {
					files[path] = e
				}
			}
			assert.Equal(t, map[string]entry{
				binPath:                        {"-rwxr-xr-x", "root/root"},
				configPath:                     {"-rw-r-----", "root/root"},
				unitPath:                       {"-rw-r--r--", "root/root"},
				docDir + "/README.md":          {"-rw-r--r--", "root/root"},
				docDir + "/agent.example.yaml": {"-rw-r--r--", "root/root"},
			}, files, "exactly these files, with these modes (postinst gives the config to group ph-agent)")

			dir := t.TempDir()
			require.Zero(t, testproc.Run(t, guard, dpkgDeb, "-R", deb, dir).Code)
			conffiles, err := os.ReadFile(filepath.Join(dir, "DEBIAN", "conffiles"))
			require.NoError(t, err)
			assert.Equal(t, configPath+"\n", string(conffiles), "the configuration is the only conffile")
			for src, dst := range map[string]string{
				filepath.Join(bin, tg.binary):                    binPath,
				filepath.Join(repoRoot, "deploy/deb/agent.yaml"): configPath,
				"ph-agent.service":                               unitPath,
				"postinst":                                       "/DEBIAN/postinst",
				"prerm":                                          "/DEBIAN/prerm",
				"postrm":                                         "/DEBIAN/postrm",
			} {
				want, err := os.ReadFile(src)
				require.NoError(t, err)
				got, err := os.ReadFile(filepath.Join(dir, dst))
				require.NoError(t, err, "%s in the package", dst)
				assert.Equal(t, string(want), string(got), "%s is %s as committed", dst, src)
			}
			for _, script := range []string{"postinst", "prerm", "postrm"} {
				fi, err := os.Stat(filepath.Join(dir, "DEBIAN", script))
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "%s is executable", script)
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		again := build(t.TempDir())
		for i := range debs {
			a, err := os.ReadFile(debs[i])
			require.NoError(t, err)
			b, err := os.ReadFile(again[i])
			require.NoError(t, err)
			assert.True(t, bytes.Equal(a, b), "%s differs between two builds of the same sources", filepath.Base(debs[i]))
		}
	})

	t.Run("revision of one architecture", func(t *testing.T) {
		got := build(t.TempDir(), "-revision", "2", "-arch", "armhf")
		require.Len(t, got, 1)
		assert.Equal(t, "ph-agent_1.4.0+3.g4be2680-2_armhf.deb", filepath.Base(got[0]))
	})

	t.Run("refusals", func(t *testing.T) {
		var stdout bytes.Buffer
		err := run(t.Context(), []string{"-version", "dev", "-root", repoRoot, "-bin", bin, "-out", t.TempDir()}, &stdout)
		require.ErrorContains(t, err, `-version "dev"`)
		err = run(t.Context(), []string{"-version", "v1.0.0", "-revision", "2 3", "-root", repoRoot, "-bin", bin,
			"-out", t.TempDir()}, &stdout)
		require.ErrorContains(t, err, "-revision")
		err = run(t.Context(), []string{"-version", "v1.0.0", "-arch", "amd64,i386", "-root", repoRoot, "-bin", bin,
			"-out", t.TempDir()}, &stdout)
		require.ErrorContains(t, err, "choose from amd64,arm64,armhf")
		empty := t.TempDir()
		err = run(t.Context(), []string{"-version", "v1.0.0", "-root", repoRoot, "-bin", empty, "-out", empty}, &stdout)
		require.ErrorContains(t, err, "ph-agent-linux-amd64", "a missing build is named")
		matches, _ := filepath.Glob(filepath.Join(empty, "*"))
		assert.Empty(t, matches, "a failed build leaves no file behind")
	})
}

// The configuration the package installs passes the agent's own check as shipped.
func TestPackagedConfigChecks(t *testing.T) {
	res := testproc.Run(t, guard, agentBin(t), "config", "check", "agent.yaml")
	require.Zero(t, res.Code, "config check of the packaged agent.yaml: %s%s", res.Stdout, res.Stderr)
	assert.Contains(t, res.Stdout, "ok")
}

// unitDirectives reads ph-agent.service into section.key -> values.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("ph-agent.service")
	require.NoError(t, err)
	out := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "unit line %q", line)
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// The unit is what the package promises: a notify service with a watchdog, restarted
// always, running as ph-agent in a read-only system with its own state directory, given
// time to finish an uplink batch; and systemd itself finds nothing to complain about.
func TestUnit(t *testing.T) {
	d := unitDirectives(t)
	for key, want := range map[string]string{
		"Service.Type":            "notify",
		"Service.NotifyAccess":    "main",
		"Service.ExecStart":       binPath + " run --config " + configPath,
		"Service.ExecReload":      "/bin/kill -HUP $MAINPID",
		"Service.User":            "ph-agent",
		"Service.Group":           "ph-agent",
		"Service.Restart":         "always",
		"Service.StateDirectory":  "ph-agent",
		"Service.ProtectSystem":   "strict",
		"Service.NoNewPrivileges": "yes",
		"Service.WatchdogSec":     "60s",
		"Service.TimeoutStopSec":  "30s",
		"Install.WantedBy":        "multi-user.target",
	} {
		assert.Equal(t, []string{want}, d[key], key)
	}
	for _, forbidden := range []string{"Service.PrivateDevices", "Service.PrivateUsers", "Service.ProtectClock"} {
		assert.NotContains(t, d, forbidden, "%s would hide serial probes or the clock's sync status", forbidden)
	}
	cfg, err := os.ReadFile("agent.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(cfg), "data_dir: /var/lib/ph-agent\n",
		"the packaged config keeps its buffer in the unit's StateDirectory, the only writable place")

	analyze := testtool.LookPath(t, "systemd", "systemd-analyze")
	// verify wants ExecStart's program to exist: point it at a real agent.
	unit, err := os.ReadFile("ph-agent.service")
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "ph-agent.service")
	require.NoError(t, os.WriteFile(path, bytes.ReplaceAll(unit, []byte(binPath), []byte(agentBin(t))), 0o644))
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	assert.Empty(t, string(out), "systemd-analyze verify reports warnings (it exits 0 for them)")

	// systemd's own exposure score (0 best, 10 worst); 3.3 when written. A threshold of 40
	// (its tenths) catches a sandbox setting dropped by mistake.
	cmd = exec.Command(analyze, "security", "--offline=yes", "--threshold=40", path)
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "systemd-analyze security: exposure above 4.0:\n%s", out)
}

// The agent speaks the notify protocol the unit relies on: READY=1 once its broker
// accepts connections, WATCHDOG=1 within the interval, STOPPING=1 on SIGTERM.
func TestAgentNotifiesSystemd(t *testing.T) {
	dir, err := os.MkdirTemp("", "phdeb")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, os.RemoveAll(dir)) })
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()

	listen := testproc.FreeAddr(t, "tcp")
	cfg, err := os.ReadFile("agent.yaml")
	require.NoError(t, err)
	for from, to := range map[string]string{
		"data_dir: /var/lib/ph-agent": "data_dir: " + filepath.Join(dir, "data"),
		`listen: "127.0.0.1:1883"`:    `listen: "` + listen + `"`,
	} {
		require.Contains(t, string(cfg), from, "the packaged config changed: adapt this test")
		cfg = bytes.Replace(cfg, []byte(from), []byte(to), 1)
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	const watchdog = 400 * time.Millisecond
	agent := testproc.NewDaemon(t, testproc.DaemonOptions{
		Name: "ph-agent", Path: agentBin(t), Args: []string{"run", "--config", cfgPath},
		Env: append(testproc.Env(), "NOTIFY_SOCKET="+sock,
			"WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10)),
		Log: filepath.Join(dir, "agent.log"),
	})
	agent.Launch(t)

	next := func() string {
		t.Helper()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		require.NoError(t, err, "no notification within %v; agent log:\n%s", guard, agent.LogTail(4<<10))
		return string(buf[:n])
	}
	require.Equal(t, "READY=1", next(), "the first notification")
	c, err := net.DialTimeout("tcp", listen, guard)
	require.NoError(t, err, "READY=1 came before the broker listened")
	require.NoError(t, c.Close())
	for range 2 {
		assert.Equal(t, "WATCHDOG=1", next())
	}
	agent.Stop(t)
	last := next()
	for last == "WATCHDOG=1" {
		last = next()
	}
	assert.Equal(t, "STOPPING=1", last)
}
