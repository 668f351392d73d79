package cloud

import (
	"bufio"
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/purehealth/purehealth/deploy/internal/deploytest"
	"github.com/purehealth/purehealth/internal/pgtest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
)

// guard bounds every wait; it only turns a hang into a failure.
const guard = 5 * time.Minute

// EnvAllArchs set to 1 builds the image for every platform it is published for (`make
// cloud-image-check`); otherwise only for this machine's.
const EnvAllArchs = "PH_CLOUD_ALL_ARCHS"

// testVersion is the VERSION build argument of the test's builds.
const testVersion = "cloud-image-test"

func TestMain(m *testing.M) {
	os.Exit(testproc.Main(new(testproc.Builder), func() int {
		code := pgtest.Main(m)
		if staged.dir != "" {
			if err := os.RemoveAll(staged.dir); err != nil {
				fmt.Fprintln(os.Stderr, "remove the staged context:", err)
			}
		}
		return code
	}))
}

// contextPaths reads the repository paths Dockerfile.dockerignore lets into the build:
// the file excludes everything (`*`) and re-includes one path a line (`!path`); any other
// shape fails, since the staging would no longer be what Docker sends.
func contextPaths(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("Dockerfile.dockerignore")
	require.NoError(t, err)
	defer f.Close()
	var paths []string
	first := true
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if first {
			require.Equal(t, "*", line, "Dockerfile.dockerignore:%d: the file starts by excluding everything", n)
			first = false
			continue
		}
		p, ok := strings.CutPrefix(line, "!")
		require.True(t, ok && p != "" && !strings.ContainsAny(p, "*?[\\") && !strings.HasPrefix(p, "/") && !strings.Contains(p, ".."),
			"Dockerfile.dockerignore:%d: %q: only `!path` lines (no patterns) are understood here", n, line)
		paths = append(paths, p)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, paths)
	return paths
}

// staged is the build context, assembled once per test binary.
var staged struct {
	once sync.Once
	dir  string
	err  error
}

// stageContext assembles what Docker sends as the build context: the paths the
// dockerignore lets in, from git's tracked files as they are now (a fresh clone's view:
// untracked files do not count), by the script balena's staging uses too.
func stageContext(t *testing.T) string {
	t.Helper()
	paths := contextPaths(t)
	staged.once.Do(func() {
		staged.dir, staged.err = os.MkdirTemp("", "ph-cloud-context-")
		if staged.err != nil {
			return
		}
		args := append([]string{"--worktree", staged.dir}, paths...)
		if out, err := exec.Command("../gitsource.sh", args...).CombinedOutput(); err != nil {
			staged.err = fmt.Errorf("gitsource.sh: %w\n%s", err, out)
		}
	})
	require.NoError(t, staged.err)
	return staged.dir
}

// buildImage runs the Dockerfile from the staged context for a Go architecture, as
// BuildKit would for the platform linux/goarch.
func buildImage(t *testing.T, ctx, goarch string) *deploytest.Image {
	t.Helper()
	text, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	return deploytest.BuildImage(t, deploytest.BuildOptions{Name: "Dockerfile", Text: string(text), Context: ctx,
		Args: map[string]string{"TARGETOS": "linux", "TARGETARCH": goarch, "VERSION": testVersion}})
}

// listenPort returns the port of cloud.yaml's listen address.
func listenPort(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("cloud.yaml")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^listen:\s*"?([^"\s#]+)"?`).FindSubmatch(b)
	require.NotNil(t, m, "cloud.yaml sets listen")
	_, port, err := net.SplitHostPort(string(m[1]))
	require.NoError(t, err)
	return port
}

var (
	elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	// The platforms the image is published for, and how this machine runs each.
	emulator = map[string]string{"arm64": "qemu-aarch64-static", "amd64": "qemu-x86_64-static"}
)

// The build context holds everything ph-cloud imports from this module; the Dockerfile's
// build stage builds it for each platform with the version it is given; the runtime
// image has the entrypoint, runs as a non-root user, and checks its health on the port
// the configuration listens on.
func TestCloudImageBuilds(t *testing.T) {
	ctx := stageContext(t)

	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "../../cloud").Output()
	require.NoError(t, err)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(ctx, rel))
		assert.NoError(t, err, "ph-cloud imports %s, which Dockerfile.dockerignore keeps out of the build", rel)
	}

	goMod, err := os.ReadFile(filepath.Join(ctx, "go.mod"))
	require.NoError(t, err)
	file, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	require.NotNil(t, goLine)
	image := regexp.MustCompile(`(?m)^FROM (?:--platform=\S+ )?golang:(\d+\.\d+)`).FindSubmatch(file)
	require.NotNil(t, image, "the build stage uses a golang image")
	assert.Equal(t, string(goLine[1]), string(image[1]), "the builder's Go is the release go.mod asks for")

	archs := []string{runtime.GOARCH}
	if os.Getenv(EnvAllArchs) == "1" {
		archs = []string{"amd64", "arm64"}
	} else {
		t.Logf("building for %s only; %s=1 (make cloud-image-check) builds amd64 and arm64", runtime.GOARCH, EnvAllArchs)
	}
	for _, arch := range archs {
		t.Run(arch, func(t *testing.T) {
			im := buildImage(t, ctx, arch)
			bin := im.Path("/usr/local/bin/ph-cloud")
			f, err := elf.Open(bin)
			require.NoError(t, err, "the image has ph-cloud")
			assert.Equal(t, elfMachine[arch], f.Machine, "ELF machine of the %s build", arch)
			for _, p := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary (CGO disabled) needs no loader")
			}
			require.NoError(t, f.Close())

			argv := []string{bin, "version"}
			if arch != runtime.GOARCH {
				argv = append([]string{testtool.LookPath(t, "qemu-user-static", emulator[arch])}, argv...)
			}
			res := testproc.Run(t, guard, argv[0], argv[1:]...)
			require.Zero(t, res.Code, "ph-cloud version: %s", res.Stderr)
			assert.Equal(t, "ph-cloud "+testVersion+"\n", res.Stdout, "the VERSION build argument reaches the binary")

			if arch != runtime.GOARCH {
				return
			}
			// What the runtime stage declares.
			assert.Equal(t, []string{"/usr/local/bin/ph-cloud-entrypoint"}, im.Entrypoint)
			assert.Equal(t, []string{"serve"}, im.Cmd)
			assert.Regexp(t, `^[1-9][0-9]*(:[1-9][0-9]*)?$`, im.User, "a numeric non-root user (orchestrators can check it)")
			port := listenPort(t)
			assert.Equal(t, []string{port}, im.Expose, "EXPOSE the port cloud.yaml listens on")
			require.NotNil(t, im.Health, "a HEALTHCHECK")
			assert.Contains(t, im.Health.Shell, "http://127.0.0.1:"+port+"/health", "the health check asks /health on the listen port")
			assert.Equal(t, "/etc/ph-cloud/cloud.yaml", im.Getenv("PH_CLOUD_CONFIG"))

			// The configuration this directory ships is one ph-cloud accepts.
			res = testproc.Run(t, guard, bin, "config", "check", "cloud.yaml")
			assert.Zero(t, res.Code, "ph-cloud config check cloud.yaml:\n%s%s", res.Stdout, res.Stderr)
		})
	}
}

// The entrypoint refuses to start without its password, naming the file, and passes
// other commands to ph-cloud.
func TestCloudEntrypoint(t *testing.T) {
	im := buildImage(t, stageContext(t), runtime.GOARCH)
	entry := im.Path(im.Entrypoint[0])
	dir := t.TempDir()
	run := func(env []string, args ...string) testproc.Result {
		t.Helper()
		res, err := testproc.Exec(t.Context(), "/usr/bin/env", append(append(append([]string{"-i"}, env...),
			"PATH="+im.Path("/usr/local/bin")+":/usr/bin:/bin", "PH_CLOUD_CONFIG="+filepath.Join(dir, "none.yaml"), entry), args...)...)
		require.NoError(t, err)
		return res
	}
	res := run([]string{"PH_DB_PASSWORD_FILE=" + filepath.Join(dir, "absent")})
	assert.NotZero(t, res.Code)
	assert.Contains(t, res.Stderr, "cannot read the database password file "+filepath.Join(dir, "absent"))

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	res = run([]string{"PH_DB_PASSWORD_FILE=" + empty})
	assert.NotZero(t, res.Code)
	assert.Contains(t, res.Stderr, "is empty")

	res = run(nil, "version")
	assert.Zero(t, res.Code, res.Stderr)
	assert.Equal(t, "ph-cloud "+testVersion+"\n", res.Stdout, "other commands go to ph-cloud, stdout untouched")

	res = run(nil)
	assert.NotZero(t, res.Code, "serve migrates first; without a configuration it stops there")
	assert.Contains(t, res.Stderr, "none.yaml")
}

// The Dockerfile's platforms are the ones this test builds, and the build stage copies
// only from the context.
func TestCloudDockerfileShape(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	stages, err := deploytest.ParseDockerfile(string(b))
	require.NoError(t, err)
	require.Len(t, stages, 2, "a build stage and the runtime image")
	var buildRuns []string
	for _, ins := range stages[0].Ins {
		if ins.Cmd == "RUN" {
			buildRuns = append(buildRuns, ins.Args)
		}
	}
	assert.True(t, slices.ContainsFunc(buildRuns, func(r string) bool {
		return strings.Contains(r, "CGO_ENABLED=0") && strings.Contains(r, `GOARCH="$TARGETARCH"`) && strings.Contains(r, "./cloud")
	}), "the build stage cross-compiles ph-cloud with CGO disabled for TARGETARCH")
	assert.Regexp(t, `^alpine:\d+\.\d+$`, stages[1].Image, "a pinned small runtime image")
}
