// Package cli is the ph-sim command line: probe and upstream simulators for tests,
// benchmarks and demos. Commands are built by constructors from their dependencies; nothing
// is global, so tests run them in-process with SetArgs and SetOut.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/purehealth/purehealth/firmware-sim/internal/mqttsim"
	"github.com/purehealth/purehealth/shared/version"
)

// Exit codes, by what went wrong.
const (
	ExitOK      = 0
	ExitFailure = 1 // the simulation failed while running
	ExitUsage   = 2 // bad command line: unknown command or flag, invalid value
	ExitConnect = 3 // could not start: the broker refused or could not be reached
)

// Run executes ph-sim with args (without the program name). Output meant for scripts goes
// to stdout, logs to stderr. It returns when the command is done or, for commands that run
// until stopped, after ctx ends and they have shut down cleanly; a stop through ctx is not an
// error. Use ExitCode to turn the error into a process exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand(stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	var f *failure
	if errors.As(err, &f) {
		return f.err
	}
	// Anything cobra rejected before a command ran is a usage problem.
	var u *usageError
	if !errors.As(err, &u) {
		cmd, _, findErr := root.Find(args)
		if findErr != nil || cmd == nil {
			cmd = root
		}
		err = &usageError{err: err, cmd: cmd.CommandPath()}
	}
	return err
}

// ExitCode maps an error from Run to the process exit status.
func ExitCode(err error) int {
	var (
		u *usageError
		c *mqttsim.ConnectError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &c):
		return ExitConnect
	}
	return ExitFailure
}

// usageError is a bad command line. Its message points at the command's help.
type usageError struct {
	err error
	cmd string
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%v (see '%s --help')", e.err, e.cmd)
}

func (e *usageError) Unwrap() error { return e.err }

// failure carries an error from a running command through cobra, so Run can tell it from
// cobra's own complaints about the command line.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }

// usage marks err as a command-line problem of cmd.
func usage(cmd *cobra.Command, err error) error {
	return &failure{err: &usageError{err: err, cmd: cmd.CommandPath()}}
}

// fail marks err as a failure of a running command.
func fail(err error) error {
	if err == nil {
		return nil
	}
	return &failure{err: err}
}

// deps is what commands share: built once by the root command before any of them runs.
type deps struct {
	log *slog.Logger
}

func newRootCommand(stderr io.Writer) *cobra.Command {
	d := &deps{}
	var logLevel string
	root := &cobra.Command{
		Use:   "ph-sim",
		Short: "Simulated water-quality probes and upstream services for Pure Health",
		Long: `ph-sim simulates the devices and services around a Pure Health station: probes
publishing realistic readings of Maharashtra rivers (diurnal cycles, the monsoon,
pollution events, probe faults), as a load generator many sensors at once, and the
government open data and satellite statistics services the cloud reads.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs, // so a mistyped command is an error, not the help
		RunE:          func(cmd *cobra.Command, _ []string) error { return fail(cmd.Help()) },
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usage(cmd, fmt.Errorf("invalid --log-level %q (want debug, info, warn or error)", logLevel))
			}
			d.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usage(cmd, err) })
	root.AddCommand(newMQTTCommand(d), newVersionCommand())
	root.AddCommand(serialCommands(d)...)
	root.AddCommand(networkProbeCommands(d)...)
	root.AddCommand(newStationCommand(d), newHistoryCommand())
	root.AddCommand(upstreamCommands(d)...)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ph-sim", version.Version)
			return fail(err)
		},
	}
}

// unjoin lists the errors joined by errors.Join (or err alone).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// oneLine joins problems into one error on one line.
func oneLine(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// splitList splits a comma-separated flag value, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
