// Command medfed runs and operates a medfed centre: the node daemon, its
// ledger tools, the federation demo and the benchmark harness.
//
// main only wires signals and exit codes; every subcommand is a small
// function over its flags and a typed configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
