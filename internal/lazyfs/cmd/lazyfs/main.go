// Command lazyfs serves a backing directory at a mount point through package lazyfs, to
// run a program by hand on a disk that can lose power or that syncs slowly:
//
//	go run ./internal/lazyfs/cmd/lazyfs [-fsync-delay 5ms] [-tear] [-writeback 0.5] BACKING MOUNTPOINT
//
// It prints "mounted" once the mount is up. SIGUSR1 cuts the power (what was not synced is
// lost, but for what -tear and -writeback keep), prints what the cut found, unmounts and
// exits 0: stop the programs using the mount first. SIGINT or SIGTERM unmounts in order,
// writing everything back. It exits 2 when it cannot mount, 1 on a later failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/purehealth/purehealth/internal/exitcode"
	"github.com/purehealth/purehealth/internal/lazyfs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cut := make(chan os.Signal, 1)
	signal.Notify(cut, syscall.SIGUSR1)
	err := run(ctx, cut, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "lazyfs:", err)
	}
	os.Exit(exitcode.Of(err))
}

// run mounts and serves until ctx ends (an orderly unmount) or cut receives (a power cut).
func run(ctx context.Context, cut <-chan os.Signal, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("lazyfs", flag.ContinueOnError)
	flags.SetOutput(stderr)
	delay := flags.Duration("fsync-delay", 0, "how long every fsync takes, one at a time (a slow device)")
	tear := flags.Bool("tear", false, "on a power cut, keep a prefix of the latest write (a torn write)")
	writeback := flags.Float64("writeback", 0, "on a power cut, the chance of each other unsynced page having been written back (0 to 1)")
	if err := flags.Parse(args); err != nil {
		return exitcode.AtStartup(err)
	}
	if flags.NArg() != 2 || *writeback < 0 || *writeback > 1 {
		flags.Usage()
		return exitcode.AtStartup(errors.New("want BACKING and MOUNTPOINT, and -writeback in 0..1"))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	fsys, err := lazyfs.Mount(flags.Arg(0), flags.Arg(1), lazyfs.Options{FsyncDelay: *delay, Logger: log})
	if err != nil {
		return exitcode.AtStartup(err)
	}
	fmt.Fprintln(stdout, "mounted")
	select {
	case <-ctx.Done():
	case <-cut:
		r, err := fsys.Cut(lazyfs.Cut{Tear: *tear, Writeback: *writeback})
		fmt.Fprintf(stdout, "power cut: %s\n", r)
		if err != nil {
			return errors.Join(err, fsys.Unmount())
		}
	}
	return fsys.Unmount()
}
