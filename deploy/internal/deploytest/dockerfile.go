package deploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Instruction is one Dockerfile instruction, continuation lines joined.
type Instruction struct {
	Line  int
	Cmd   string            // upper case
	Flags map[string]string // --from=build and the like
	Args  string
}

// Stage is one FROM of a Dockerfile and the instructions that follow it.
type Stage struct {
	Image, Name string
	Ins         []Instruction
}

// ParseDockerfile reads the instructions of a Dockerfile into its stages. An ARG before
// the first FROM is skipped (it can only parameterise FROM lines, which are taken as
// written).
func ParseDockerfile(text string) ([]Stage, error) {
	var stages []Stage
	var cur *Instruction // Args holds the joined text until finish parses it
	finish := func() error {
		if cur == nil {
			return nil
		}
		ins := *cur
		cur = nil
		// Flags come first, possibly on continuation lines.
		rest := strings.TrimSpace(ins.Args)
		for strings.HasPrefix(rest, "--") {
			flag, after, _ := strings.Cut(rest, " ")
			k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
			ins.Flags[k] = v
			rest = strings.TrimSpace(after)
		}
		ins.Args = rest
		if ins.Cmd == "FROM" {
			f := strings.Fields(ins.Args)
			if len(f) == 0 {
				return fmt.Errorf("line %d: FROM without an image", ins.Line)
			}
			st := Stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if ins.Cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("line %d: %s before FROM", ins.Line, ins.Cmd)
		}
		stages[len(stages)-1].Ins = append(stages[len(stages)-1].Ins, ins)
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
			cur = &Instruction{Line: i + 1, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}, Args: strings.TrimSpace(rest)}
		} else {
			cur.Args += " " + strings.TrimSpace(trimmed)
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

// Image is a stage's file system, emulated in a directory, and what the stage's
// instructions declare about the container.
type Image struct {
	Root    string   // the image's /
	Workdir string   // the last WORKDIR, absolute
	Env     []string // KEY=VALUE of its ENV instructions (build arguments are not kept)

	User       string       // USER, empty for root
	Entrypoint []string     // ENTRYPOINT (exec form)
	Cmd        []string     // CMD (exec form)
	Expose     []string     // EXPOSE ports, such as 8080 or 8080/tcp
	Health     *Healthcheck // HEALTHCHECK, nil without one
	StopSignal string       // STOPSIGNAL
}

// Healthcheck is a HEALTHCHECK instruction.
type Healthcheck struct {
	Flags map[string]string // --interval=30s and the like
	Shell string            // the command in shell form, which Docker runs with /bin/sh -c
	Exec  []string          // the command in exec form
}

// Path returns where the image's path p is on this machine (relative to the WORKDIR
// unless absolute).
func (im *Image) Path(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(im.Workdir, p)
	}
	return filepath.Join(im.Root, filepath.FromSlash(path.Clean(p)))
}

// Getenv returns the value an ENV instruction gave key, or "".
func (im *Image) Getenv(key string) string {
	v := ""
	for _, kv := range im.Env {
		if k, val, _ := strings.Cut(kv, "="); k == key {
			v = val
		}
	}
	return v
}

// copyIn is COPY: each source (a file or a directory's contents) from srcRoot into dst.
func (im *Image) copyIn(srcRoot string, srcs []string, dst string) error {
	target := im.Path(dst)
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

// BuildOptions says what BuildImage builds.
type BuildOptions struct {
	// Name is the Dockerfile's name in messages.
	Name string
	// Text is the Dockerfile, with the placeholders of a builder that fills any (balena's
	// %%BALENA_ARCH%%) already filled.
	Text string
	// Context is the build context: the directory COPY reads from.
	Context string
	// Args are the build arguments; an ARG without one takes its default, or "".
	Args map[string]string
}

// BuildImage builds the Dockerfile of o without Docker: the build stages for real (their
// COPY into a directory, their RUN commands with sh and this machine's tools, with the
// ARG and ENV values in the environment), then the final stage's COPY instructions,
// whose sources must all exist; the final stage's RUN commands need its base image and
// are only logged. It returns the final image. The ENTRYPOINT must be in exec form and
// name an executable file of the image. An instruction this does not emulate fails t.
//
// RUN commands run in the stage's WORKDIR inside its directory, not in a root of their
// own: keep them relative to the WORKDIR, as nothing else of the base image is there.
func BuildImage(t testing.TB, o BuildOptions) *Image {
	t.Helper()
	stages, err := ParseDockerfile(o.Text)
	require.NoError(t, err, o.Name)
	require.NotEmpty(t, stages, "%s: no FROM", o.Name)

	built := map[string]*Image{}
	for i, st := range stages {
		final := i == len(stages)-1
		im := &Image{Root: t.TempDir(), Workdir: "/"}
		var runEnv []string // ARG and ENV, in order
		for _, ins := range st.Ins {
			where := fmt.Sprintf("%s:%d %s", o.Name, ins.Line, ins.Cmd)
			switch ins.Cmd {
			case "ARG":
				for _, a := range strings.Fields(ins.Args) {
					name, def, _ := strings.Cut(a, "=")
					if v, ok := o.Args[name]; ok {
						def = v
					}
					runEnv = append(runEnv, name+"="+def)
				}
			case "ENV":
				k, v, ok := strings.Cut(ins.Args, "=")
				require.True(t, ok && !strings.ContainsAny(k, " \t"), "%s: use ENV KEY=VALUE, one a line", where)
				require.NotContains(t, v, "$", "%s: variables in ENV values are not emulated", where)
				im.Env = append(im.Env, k+"="+v)
				runEnv = append(runEnv, k+"="+v)
			case "WORKDIR":
				if path.IsAbs(ins.Args) {
					im.Workdir = path.Clean(ins.Args)
				} else {
					im.Workdir = path.Join(im.Workdir, ins.Args)
				}
				require.NoError(t, os.MkdirAll(im.Path("."), 0o755))
			case "COPY":
				f := strings.Fields(ins.Args)
				require.GreaterOrEqual(t, len(f), 2, where)
				for k := range ins.Flags {
					require.Equal(t, "from", k, "%s: COPY --%s is not emulated", where, k)
				}
				from := o.Context
				if name := ins.Flags["from"]; name != "" {
					src, ok := built[name]
					require.True(t, ok, "%s: no earlier stage %q", where, name)
					from = src.Root
					for _, s := range f[:len(f)-1] {
						require.True(t, path.IsAbs(s), "%s: --from sources are absolute paths", where)
					}
				}
				require.NoError(t, im.copyIn(from, f[:len(f)-1], f[len(f)-1]), where)
			case "RUN":
				if final {
					t.Logf("%s: not run here (it needs the base image %s)", where, st.Image)
					continue
				}
				require.Empty(t, ins.Flags, "%s: RUN flags are not emulated", where)
				require.False(t, strings.HasPrefix(ins.Args, "["), "%s: the exec form is not emulated", where)
				cmd := exec.Command("sh", "-c", ins.Args)
				cmd.Dir, cmd.Env = im.Path("."), append(os.Environ(), runEnv...)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s:\n%s", where, out)
			case "ENTRYPOINT":
				im.Entrypoint = execForm(t, where, ins.Args)
			case "CMD":
				im.Cmd = execForm(t, where, ins.Args)
			case "USER":
				im.User = ins.Args
			case "EXPOSE":
				im.Expose = append(im.Expose, strings.Fields(ins.Args)...)
			case "STOPSIGNAL":
				im.StopSignal = ins.Args
			case "HEALTHCHECK":
				im.Health = healthcheck(t, where, ins)
			case "LABEL":
			default:
				require.Failf(t, "unexpected instruction", "%s: not emulated; extend deploytest.BuildImage", where)
			}
		}
		if st.Name != "" {
			built[st.Name] = im
		}
		if final {
			if len(im.Entrypoint) > 0 {
				fi, err := os.Stat(im.Path(im.Entrypoint[0]))
				require.NoError(t, err, "%s: the entrypoint is not in the image", o.Name)
				require.NotZero(t, fi.Mode()&0o111, "%s: the entrypoint must be executable (COPY keeps the mode of the build context)", o.Name)
			}
			return im
		}
	}
	return nil
}

// execForm decodes the JSON array of an exec-form ENTRYPOINT or CMD.
func execForm(t testing.TB, where, args string) []string {
	t.Helper()
	var argv []string
	require.NoError(t, json.Unmarshal([]byte(args), &argv), "%s: use the exec form, a JSON array", where)
	require.NotEmpty(t, argv, where)
	return argv
}

func healthcheck(t testing.TB, where string, ins Instruction) *Healthcheck {
	t.Helper()
	if ins.Args == "NONE" {
		return nil
	}
	for k := range ins.Flags {
		require.Contains(t, []string{"interval", "timeout", "start-period", "start-interval", "retries"}, k,
			"%s: unknown flag --%s", where, k)
	}
	form, cmd, ok := strings.Cut(ins.Args, " ")
	require.True(t, ok && form == "CMD", "%s: HEALTHCHECK [OPTIONS] CMD command", where)
	h := &Healthcheck{Flags: ins.Flags}
	if cmd = strings.TrimSpace(cmd); strings.HasPrefix(cmd, "[") {
		h.Exec = execForm(t, where, cmd)
	} else {
		h.Shell = cmd
	}
	return h
}
