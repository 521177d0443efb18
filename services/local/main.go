// Command local runs the streaming pipeline on this machine, with no AWS account: it starts the Kinesis, DynamoDB
// and CloudWatch emulators on 127.0.0.1, creates the stream, builds the services and runs them as child processes
// with the same configuration variables they read in AWS: the producer on 127.0.0.1 and consumer workers that
// share the stream's leases.
//
// Ctrl-C (or SIGTERM) stops the services first, so the producer flushes its buffer into the stream, then the
// emulators; every process it started is stopped by its PID.
//
//	go run ./services/local [-port 8080] [-shards 5] [-consumers 2] [-stream local-stream] [-dir .local]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "local: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.IntVar(&cfg.Port, "port", 8080, "port of the producer's HTTP API on 127.0.0.1")
	fs.IntVar(&cfg.Shards, "shards", 5, "shards of the stream when it is created")
	fs.StringVar(&cfg.Stream, "stream", "local-stream", "name of the Kinesis stream")
	fs.StringVar(&cfg.Dir, "dir", ".local", "directory for the built services and their logs")
	fs.IntVar(&cfg.Consumers, "consumers", 2, "consumer workers")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if cfg.Consumers < 0 {
		fmt.Fprintf(errOut, "-consumers must not be negative, got %d\n", cfg.Consumers)
		return config{}, errors.New("bad -consumers")
	}
	if cfg.Shards < 1 {
		fmt.Fprintf(errOut, "-shards must be at least 1, got %d\n", cfg.Shards)
		return config{}, errors.New("bad -shards")
	}
	return cfg, nil
}
