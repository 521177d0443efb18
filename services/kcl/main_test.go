package kcl

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/emulator"
)

// testEmulators are started once for the package: kinesis-local and dynalite.
var testEmulators *emulator.Emulators

var uniqueCounter atomic.Int64

// uniqueName returns a table or stream name no other test in this run uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, uniqueCounter.Add(1))
}

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	opts := emulator.Options{Kinesis: true, DynamoDB: true}
	// KCL_EMULATOR_LOG names a file that receives the emulators' own output, to diagnose an emulator failure.
	if path := os.Getenv("KCL_EMULATOR_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		opts.Output = f
	}
	e, err := emulator.Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kcl tests need kinesis-local and dynalite (npm ci in the repository root): %v\n", err)
		os.Exit(1)
	}
	testEmulators = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop emulators: %v\n", err)
	}
	os.Exit(code)
}
