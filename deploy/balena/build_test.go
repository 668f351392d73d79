package balena

import (
	"errors"
	"fmt"
	"io"
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
	"go.yaml.in/yaml/v3"

	"github.com/purehealth/purehealth/deploy/internal/deploytest"
	"github.com/purehealth/purehealth/internal/testproc"
	"github.com/purehealth/purehealth/internal/testtool"
)

// guard bounds every wait; it only turns a hang into a failure.
const guard = 5 * time.Minute

// EnvAllArchs set to 1 builds the image for every architecture of the fleet's device
// types (`make balena-check`); otherwise only for this machine's, which the README test
// runs.
const EnvAllArchs = "PH_BALENA_ALL_ARCHS"

func TestMain(m *testing.M) {
	os.Exit(testproc.Main(new(testproc.Builder), func() int {
		code := m.Run()
		if staged.dir != "" {
			if err := os.RemoveAll(staged.dir); err != nil {
				fmt.Fprintln(os.Stderr, "remove the staged context:", err)
			}
		}
		return code
	}))
}

// staged is the directory stage.sh assembles, shared by the tests of one run.
var staged struct {
	once         sync.Once
	dir, version string
	err          error
}

// stageContext runs stage.sh --worktree once: the same staging push.sh releases, from
// the tracked files as they are now.
func stageContext(t *testing.T) (dir, version string) {
	t.Helper()
	staged.once.Do(func() {
		staged.dir, staged.err = os.MkdirTemp("", "ph-balena-")
		if staged.err != nil {
			return
		}
		var out []byte
		out, staged.err = exec.Command("./stage.sh", "--worktree", staged.dir).CombinedOutput()
		if staged.err != nil {
			staged.err = fmt.Errorf("stage.sh: %w\n%s", staged.err, out)
		}
		staged.version = strings.TrimSpace(string(out))
	})
	require.NoError(t, staged.err)
	return staged.dir, staged.version
}

// build runs the Dockerfile.template of the staged context for a balena architecture:
// the build stage for real, then the final stage's COPY instructions (deploytest.BuildImage).
func build(t *testing.T, ctx, arch string, args map[string]string) *deploytest.Image {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(ctx, "Dockerfile.template"))
	require.NoError(t, err)
	// balena's builders replace the %%BALENA_...%% placeholders before Docker sees the file.
	text := strings.ReplaceAll(string(tmpl), "%%BALENA_ARCH%%", arch)
	require.NotContains(t, text, "%%BALENA_", "a placeholder this emulation does not fill")
	stages, err := deploytest.ParseDockerfile(text)
	require.NoError(t, err)
	require.Len(t, stages, 2, "a build stage and the runtime image")
	return deploytest.BuildImage(t, deploytest.BuildOptions{
		Name: "Dockerfile.template", Text: text, Context: ctx, Args: args})
}

// composeArgs returns the build arguments of the staged compose file's service.
func composeArgs(t *testing.T, ctx string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ctx, "docker-compose.yml"))
	require.NoError(t, err)
	var c struct {
		Services map[string]struct {
			Build struct {
				Args map[string]string `yaml:"args"`
			} `yaml:"build"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &c))
	require.Contains(t, c.Services, "ph-agent")
	return c.Services["ph-agent"].Build.Args
}

// elfMachine and emulators: how to tell and run each balena architecture's build.
var (
	elfMachine = map[string][2]byte{"aarch64": {0xb7, 0}, "armv7hf": {0x28, 0}, "rpi": {0x28, 0}, "amd64": {0x3e, 0}}
	emulator   = map[string][]string{
		"aarch64": {"qemu-aarch64-static"},
		"armv7hf": {"qemu-arm-static", "-cpu", "cortex-a7"},
		"rpi":     {"qemu-arm-static", "-cpu", "arm1176"}, // the Pi 1 and Zero's ARMv6 core
	}
	hostArch = map[string]string{"amd64": "amd64", "arm64": "aarch64"}[runtime.GOARCH]
)

// runAgent runs the image's ph-agent with args, under qemu-user for another architecture.
func runAgent(t *testing.T, arch, bin string, args ...string) testproc.Result {
	t.Helper()
	argv := append([]string{bin}, args...)
	if arch != hostArch {
		emu := emulator[arch]
		argv = append(append([]string{testtool.LookPath(t, "qemu-user-static", emu[0])}, emu[1:]...), argv...)
	}
	return testproc.Run(t, guard, argv[0], argv[1:]...)
}

// fleetArchs returns the architectures of the fleet's device types.
func fleetArchs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("balena.yml")
	require.NoError(t, err)
	var f struct {
		Data struct {
			Supported []string `yaml:"supportedDeviceTypes"`
		} `yaml:"data"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	var out []string
	for _, dt := range f.Data.Supported {
		a, ok := deviceArch[dt]
		require.True(t, ok, "device type %s", dt)
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// The context holds everything the agent imports from this module, the Dockerfile's
// build stage builds the agent from it for each architecture, and the image gets the
// files its runtime stage copies.
func TestBalenaImageBuilds(t *testing.T) {
	ctx, version := stageContext(t)

	// Every package of this module the agent needs is inside the staged source: the
	// build would fail without it, but this names what is missing.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "../../agent").Output()
	require.NoError(t, err)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(ctx, "src", rel))
		assert.NoError(t, err, "the agent imports %s, which context.list does not bring into the build", rel)
	}

	goMod, err := os.ReadFile(filepath.Join(ctx, "src", "go.mod"))
	require.NoError(t, err)
	tmpl, err := os.ReadFile("Dockerfile.template")
	require.NoError(t, err)
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	require.NotNil(t, goLine)
	image := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)`).FindSubmatch(tmpl)
	require.NotNil(t, image, "the build stage uses a golang image")
	assert.Equal(t, string(goLine[1]), string(image[1]), "the builder's Go is the release go.mod asks for")
	t.Logf("building with %s; balena's builders use golang:%s", runtime.Version(), image[1])

	args := composeArgs(t, ctx)
	assert.Equal(t, version, args["VERSION"], "stage.sh stamps the version into the compose file")
	archs := []string{hostArch}
	if os.Getenv(EnvAllArchs) == "1" {
		archs = append(fleetArchs(t), "amd64")
	} else {
		t.Logf("building for %s only; %s=1 (make balena-check) builds %v too", hostArch, EnvAllArchs, fleetArchs(t))
	}
	for _, arch := range slices.Compact(archs) {
		t.Run(arch, func(t *testing.T) {
			im := build(t, ctx, arch, args)
			bin := im.Path("/usr/local/bin/ph-agent")
			head := make([]byte, 20)
			f, err := os.Open(bin)
			require.NoError(t, err, "the image has its agent")
			_, err = io.ReadFull(f, head)
			require.NoError(t, errors.Join(err, f.Close()))
			assert.Equal(t, []byte("\x7fELF"), head[:4])
			m := elfMachine[arch]
			assert.Equal(t, m[:], head[18:20], "ELF machine of the %s build", arch)

			res := runAgent(t, arch, bin, "--version")
			require.Zero(t, res.Code, "ph-agent --version: %s", res.Stderr)
			assert.Equal(t, "ph-agent "+version+"\n", res.Stdout, "the version build argument reaches the binary")

			for _, p := range []string{"/usr/share/ph-agent/agent.yaml.template", "/usr/local/bin/ph-entrypoint"} {
				_, err := os.Stat(im.Path(p))
				assert.NoError(t, err, "%s in the image", p)
			}
			assert.Contains(t, im.Env, "PH_CONFIG=/data/agent.yaml")
		})
	}
}
