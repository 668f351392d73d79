// Command ph-cloud is the Pure Health cloud service. See `ph-cloud --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/purehealth/purehealth/cloud/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}
