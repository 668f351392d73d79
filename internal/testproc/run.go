package testproc

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Result is what a one-shot command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int // the exit status; -1 when a signal ended the command
}

// Run runs the program at path with args to its end, bounded by timeout, and returns what
// it printed and its exit status. A non-zero exit is a Result, not a failure: t fails only
// when the program cannot be run at all.
func Run(t testing.TB, timeout time.Duration, path string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	res, err := execute(ctx, path, args)
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		res.Code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", path, args, err)
	}
	return res
}

// Exec is Run for polls and goroutines: it does not touch a testing.T. It returns an error
// when the program cannot be run or ctx ends before it exits.
func Exec(ctx context.Context, path string, args ...string) (Result, error) {
	res, err := execute(ctx, path, args)
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok && ctx.Err() == nil {
		res.Code = exitErr.ExitCode()
		return res, nil
	}
	return res, err
}

// execute runs a command with the environment of Env and returns its output and the error
// of exec.Cmd.Run.
func execute(ctx context.Context, path string, args []string) (Result, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return Result{Stdout: stdout.String(), Stderr: stderr.String()}, err
}
