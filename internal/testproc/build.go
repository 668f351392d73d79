package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Builder builds Go commands for the tests of one test binary, each at most once, into a
// temporary directory of its own. The zero value is ready to use; a test package keeps one
// for the whole run and calls Close from TestMain once the tests are done. It is safe for
// concurrent use.
type Builder struct {
	mu     sync.Mutex
	dir    string
	builds map[string]*build
}

// build is one command, built by the first caller that asks for it.
type build struct {
	once sync.Once
	path string
	err  error
}

// Build returns the path of the command at the import path pkg, built as name, building it
// on first use. With race it is built with the race detector (pass Race to follow the test
// binary). A failed build is not tried again: every call returns its error, with the
// compiler's output.
func (b *Builder) Build(name, pkg string, race bool) (string, error) {
	bd, err := b.entry(name, pkg, race)
	if err != nil {
		return "", err
	}
	bd.once.Do(func() {
		args := []string{"build"}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "-o", bd.path, pkg)
		if out, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
			bd.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	return bd.path, bd.err
}

// Binary is Build for a test: it fails t when the command cannot be built.
func (b *Builder) Binary(t testing.TB, name, pkg string, race bool) string {
	t.Helper()
	path, err := b.Build(name, pkg, race)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// entry returns the build of name, creating the directory and the entry on first use.
func (b *Builder) entry(name, pkg string, race bool) (*build, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "testproc-bin")
		if err != nil {
			return nil, err
		}
		b.dir = dir
	}
	if b.builds == nil {
		b.builds = map[string]*build{}
	}
	key := fmt.Sprintf("%s %s %t", name, pkg, race)
	bd, ok := b.builds[key]
	if !ok {
		// Each variant gets its own subdirectory, so that the program keeps its name.
		sub := filepath.Join(b.dir, fmt.Sprint(len(b.builds)))
		if err := os.Mkdir(sub, 0o755); err != nil {
			return nil, err
		}
		bd = &build{path: filepath.Join(sub, name)}
		b.builds[key] = bd
	}
	return bd, nil
}

// Close removes the built commands. Call it once no process of them runs any more.
// Idempotent; the Builder can build again afterwards.
func (b *Builder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return nil
	}
	err := os.RemoveAll(b.dir)
	b.dir, b.builds = "", nil
	return err
}

// goTool is the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// Env is the environment of a process under test: the test binary's, with the race
// detector's wait at exit turned off (GORACE atexit_sleep_ms=0).
func Env() []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(os.Environ(), "GORACE="+gorace)
}
