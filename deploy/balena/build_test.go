package balena

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
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

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int
	cmd   string            // upper case
	flags map[string]string // --from=build and the like
	args  string
}

type dockerStage struct {
	image, name string
	ins         []instruction
}

// parseDockerfile reads the instructions of a Dockerfile into its stages.
func parseDockerfile(text string) ([]dockerStage, error) {
	var stages []dockerStage
	var cur *instruction
	finish := func() error {
		if cur == nil {
			return nil
		}
		ins := *cur
		cur = nil
		if ins.cmd == "FROM" {
			f := strings.Fields(ins.args)
			st := dockerStage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if ins.cmd == "ARG" {
				return nil // an ARG before the first FROM
			}
			return fmt.Errorf("line %d: %s before FROM", ins.line, ins.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, ins)
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.TrimSuffix(trimmed, "\\")
		if cur == nil {
			cmd, rest, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), flags: map[string]string{}}
			rest = strings.TrimSpace(rest)
			for strings.HasPrefix(rest, "--") {
				flag, after, _ := strings.Cut(rest, " ")
				k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
				cur.flags[k] = v
				rest = strings.TrimSpace(after)
			}
			cur.args = rest
		} else {
			cur.args += " " + trimmed
		}
		if !cont {
			if err := finish(); err != nil {
				return nil, err
			}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return stages, nil
}

// image is a stage's file system, emulated in a directory.
type image struct {
	root, workdir string
	env           []string
}

func (im *image) path(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(im.workdir, p)
	}
	return filepath.Join(im.root, filepath.FromSlash(path.Clean(p)))
}

// copyIn is COPY: each source (a file or a directory's contents) from srcRoot into dst.
func (im *image) copyIn(srcRoot string, srcs []string, dst string) error {
	target := im.path(dst)
	intoDir := strings.HasSuffix(dst, "/") || len(srcs) > 1
	for _, s := range srcs {
		clean := path.Clean(s)
		if clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("COPY %s: outside the build context", s)
		}
		src := filepath.Join(srcRoot, filepath.FromSlash(clean))
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("COPY %s: %w", s, err)
		}
		if fi.IsDir() {
			if err := copyTree(src, target); err != nil {
				return fmt.Errorf("COPY %s: %w", s, err)
			}
			continue
		}
		to := target
		if intoDir {
			to = filepath.Join(target, filepath.Base(src))
		}
		if err := copyFile(src, to, fi.Mode()); err != nil {
			return fmt.Errorf("COPY %s: %w", s, err)
		}
	}
	return nil
}

// copyTree copies the contents of directory src into dst, replacing files that exist
// (as COPY does; os.CopyFS would refuse).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(p, filepath.Join(dst, rel), fi.Mode())
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// build runs the Dockerfile.template of the staged context for a balena architecture:
// the build stage for real (its COPY into a directory, its RUN commands with sh and this
// machine's Go), then the final stage's COPY instructions, whose sources must all exist.
// It returns the final image's directory and environment.
func build(t *testing.T, ctx, arch string, args map[string]string) *image {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(ctx, "Dockerfile.template"))
	require.NoError(t, err)
	// balena's builders replace the %%BALENA_...%% placeholders before Docker sees the file.
	text := strings.ReplaceAll(string(tmpl), "%%BALENA_ARCH%%", arch)
	require.NotContains(t, text, "%%BALENA_", "a placeholder this emulation does not fill")
	stages, err := parseDockerfile(text)
	require.NoError(t, err)
	require.Len(t, stages, 2, "a build stage and the runtime image")

	roots := map[string]*image{}
	for i, st := range stages {
		final := i == len(stages)-1
		im := &image{root: t.TempDir(), workdir: "/", env: os.Environ()}
		for _, ins := range st.ins {
			where := fmt.Sprintf("Dockerfile.template:%d %s", ins.line, ins.cmd)
			switch ins.cmd {
			case "ARG":
				name, def, _ := strings.Cut(ins.args, "=")
				if v, ok := args[name]; ok {
					def = v
				}
				im.env = append(im.env, name+"="+def)
			case "ENV":
				k, v, ok := strings.Cut(ins.args, "=")
				require.True(t, ok, "%s: use ENV KEY=VALUE", where)
				im.env = append(im.env, k+"="+v)
			case "WORKDIR":
				im.workdir = path.Join(im.workdir, ins.args)
				require.NoError(t, os.MkdirAll(im.path("."), 0o755))
			case "COPY":
				f := strings.Fields(ins.args)
				require.GreaterOrEqual(t, len(f), 2, where)
				from := ctx
				if name := ins.flags["from"]; name != "" {
					src, ok := roots[name]
					require.True(t, ok, "%s: no earlier stage %q", where, name)
					from = src.root
					for _, s := range f[:len(f)-1] {
						require.True(t, path.IsAbs(s), "%s: --from sources are absolute paths", where)
					}
				}
				require.NoError(t, im.copyIn(from, f[:len(f)-1], f[len(f)-1]), where)
			case "RUN":
				if final {
					t.Logf("%s: not run here (it needs the runtime base image %s)", where, st.image)
					continue
				}
				require.False(t, strings.HasPrefix(ins.args, "["), "%s: the exec form is not emulated", where)
				cmd := exec.Command("sh", "-c", ins.args)
				cmd.Dir, cmd.Env = im.path("."), im.env
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s for %s:\n%s", where, arch, out)
			case "ENTRYPOINT":
				var argv []string
				require.NoError(t, yaml.Unmarshal([]byte(ins.args), &argv), "%s: use the exec form", where)
				fi, err := os.Stat(im.path(argv[0]))
				require.NoError(t, err, "%s: the entrypoint is not in the image", where)
				assert.NotZero(t, fi.Mode()&0o111, "%s: the entrypoint must be executable (the build context keeps the mode)", where)
			case "STOPSIGNAL", "LABEL", "EXPOSE", "CMD":
			default:
				require.Failf(t, "unexpected instruction", "%s: not emulated; extend build_test.go", where)
			}
		}
		if st.name != "" {
			roots[st.name] = im
		}
		if final {
			return im
		}
	}
	return nil
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
			bin := im.path("/usr/local/bin/ph-agent")
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
				_, err := os.Stat(im.path(p))
				assert.NoError(t, err, "%s in the image", p)
			}
			assert.Contains(t, im.env, "PH_CONFIG=/data/agent.yaml")
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	stages, err := parseDockerfile("ARG X\nFROM a AS one\n# note\nRUN a \\\n  b\nCOPY --from=one /x /y\nFROM b\nENV K=v\n")
	require.NoError(t, err)
	require.Len(t, stages, 2)
	assert.Equal(t, dockerStage{image: "a", name: "one", ins: []instruction{
		{line: 4, cmd: "RUN", flags: map[string]string{}, args: "a b"},
		{line: 6, cmd: "COPY", flags: map[string]string{"from": "one"}, args: "/x /y"},
	}}, stages[0])
	assert.Equal(t, "b", stages[1].image)
	_, err = parseDockerfile("RUN x\n")
	require.ErrorContains(t, err, "before FROM")
}
