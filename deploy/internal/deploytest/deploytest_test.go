package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDockerfile(t *testing.T) {
	stages, err := ParseDockerfile("ARG X\nFROM --platform=$BUILDPLATFORM a AS one\n# note\nRUN a \\\n  b\nCOPY --from=one /x /y\nFROM b\nENV K=v\n")
	require.NoError(t, err)
	require.Len(t, stages, 2)
	assert.Equal(t, Stage{Image: "a", Name: "one", Ins: []Instruction{
		{Line: 4, Cmd: "RUN", Flags: map[string]string{}, Args: "a b"},
		{Line: 6, Cmd: "COPY", Flags: map[string]string{"from": "one"}, Args: "/x /y"},
	}}, stages[0])
	assert.Equal(t, "b", stages[1].Image)
	_, err = ParseDockerfile("RUN x\n")
	require.ErrorContains(t, err, "before FROM")
}

// A two-stage build: the build stage runs with its arguments in a directory of its own,
// the runtime stage gets what it copies and declares the rest.
func TestBuildImage(t *testing.T) {
	ctx := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(ctx, "src", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "src", "sub", "in.txt"), []byte("hello"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	const file = `FROM builder AS build
ARG GREETING=hi
ARG TARGET
WORKDIR /src
COPY src ./
RUN printf '%s %s ' "$GREETING" "${TARGET:-none}" >out.txt && cat sub/in.txt >>out.txt

FROM runtime
RUN adduser app
COPY --from=build /src/out.txt /usr/share/app/
COPY run.sh /usr/local/bin/run
ENV APP_CONFIG=/etc/app.yaml
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s \
    --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/run"]
CMD ["serve"]
`
	im := BuildImage(t, BuildOptions{Name: "Dockerfile", Text: file, Context: ctx, Args: map[string]string{"TARGET": "arm64"}})
	out, err := os.ReadFile(im.Path("/usr/share/app/out.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hi arm64 hello", string(out), "the RUN saw the ARG default, the build argument and the COPY")
	assert.Equal(t, []string{"APP_CONFIG=/etc/app.yaml"}, im.Env, "ENV is kept, build arguments are not")
	assert.Equal(t, "/etc/app.yaml", im.Getenv("APP_CONFIG"))
	assert.Equal(t, "10001:10001", im.User)
	assert.Equal(t, []string{"8080"}, im.Expose)
	assert.Equal(t, []string{"/usr/local/bin/run"}, im.Entrypoint)
	assert.Equal(t, []string{"serve"}, im.Cmd)
	assert.Equal(t, "SIGTERM", im.StopSignal)
	require.NotNil(t, im.Health)
	assert.Equal(t, "wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1", im.Health.Shell)
	assert.Equal(t, map[string]string{"interval": "30s", "retries": "3"}, im.Health.Flags)
}

// What the emulation cannot do faithfully fails the test instead of passing unchecked.
func TestBuildImageRefuses(t *testing.T) {
	ctx := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "run.sh"), []byte("#!/bin/sh\n"), 0o644))
	tests := []struct{ name, file, want string }{
		{"outside the context", "FROM a\nCOPY ../x /x\n", "outside the build context"},
		{"missing source", "FROM a\nCOPY nothing /x\n", "COPY nothing"},
		{"failing RUN", "FROM a AS b\nRUN exit 3\nFROM c\n", "Dockerfile:2 RUN"},
		{"unknown stage", "FROM a\nCOPY --from=b /x /y\n", "no earlier stage"},
		{"chmod", "FROM a\nCOPY --chmod=0755 run.sh /x\n", "COPY --chmod is not emulated"},
		{"shell entrypoint", "FROM a\nENTRYPOINT run.sh\n", "exec form"},
		{"entrypoint not executable", "FROM a\nCOPY run.sh /run\nENTRYPOINT [\"/run\"]\n", "must be executable"},
		{"absent entrypoint", "FROM a\nENTRYPOINT [\"/run\"]\n", "not in the image"},
		{"unknown instruction", "FROM a\nONBUILD RUN x\n", "not emulated"},
		{"healthcheck flag", "FROM a\nHEALTHCHECK --every=1s CMD true\n", "unknown flag --every"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			func() {
				defer func() { _ = recover() }() // FailNow's Goexit, emulated by the recorder
				BuildImage(rec, BuildOptions{Name: "Dockerfile", Text: tt.file, Context: ctx})
			}()
			require.True(t, rec.failed, "the build should fail")
			assert.Contains(t, strings.Join(rec.msgs, "\n"), tt.want)
		})
	}
}

// recorder is a testing.TB that records failures instead of failing the test.
type recorder struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " "))
}
func (r *recorder) FailNow()            { r.failed = true; panic(r) }
func (r *recorder) Helper()             {}
func (r *recorder) Logf(string, ...any) {}

func TestFindings(t *testing.T) {
	p := &Findings{File: "c.yml"}
	top := ParseYAML(p, []byte("a: 1\nb:\n  c: [x, y]\n"))
	require.NotNil(t, top)
	require.Empty(t, p.List)
	assert.Len(t, Pairs(top), 2)
	assert.Equal(t, "1", Lookup(top, "a").Value)
	assert.Nil(t, Lookup(top, "z"))
	items := Items(Lookup(Lookup(top, "b"), "c"))
	require.Len(t, items, 2)
	p.Add(items[1], "no %s", "y")
	assert.Equal(t, []string{"c.yml:3: no y"}, p.List)

	p = &Findings{File: "d.yml"}
	assert.Nil(t, ParseYAML(p, []byte("- a\n")))
	assert.Equal(t, []string{"d.yml:1: the top level must be a mapping"}, p.List)
}

func TestShellBlocks(t *testing.T) {
	md := filepath.Join(t.TempDir(), "README.md")
	require.NoError(t, os.WriteFile(md, []byte("# x\n```sh\na\nb\n```\n```yaml\nk: v\n```\n1. step\n\n   ```sh\n   c\n     d\n   ```\n"), 0o644))
	assert.Equal(t, [][]string{{"a", "b"}, {"c", "  d"}}, ShellBlocks(t, md))
	assert.Equal(t, []string{"c", "  d"}, ShellBlock(t, md, "d"))
}
