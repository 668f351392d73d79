// Command ph-agent is the Pure Health station agent. See `ph-agent --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/purehealth/purehealth/agent/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}
