// Command producer is the HTTP ingest service: it takes JSON records over
// HTTP (package ingest) and puts them into a Kinesis stream with the
// shard-aware KPL-compatible producer (package kpl).
//
// Configuration comes from the environment (see package settings for every
// variable; STREAM_NAME is required). On SIGTERM or SIGINT the health check
// turns 503, records are still taken for DRAIN_WINDOW, then the server stops
// accepting, finishes its requests and flushes the buffer, all within
// SHUTDOWN_TIMEOUT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamproc/streamproc/services/producer/settings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := settings.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "producer: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	if err := run(ctx, s, runOptions{stdout: os.Stdout}); err != nil {
		fmt.Fprintf(os.Stderr, "producer: %v\n", err)
		os.Exit(1)
	}
}
