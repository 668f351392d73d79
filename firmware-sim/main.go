// Command ph-sim simulates probes and upstream services for Pure Health tests, benchmarks
// and demos. See `ph-sim --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/purehealth/purehealth/firmware-sim/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ph-sim:", err)
	}
	os.Exit(cli.ExitCode(err))
}
