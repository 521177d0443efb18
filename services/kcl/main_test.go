package kcl

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
)

// testEmulators are kinesis-local and dynalite, started once for the package by the first test that needs them.
var testEmulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true, DynamoDB: true}}

var uniqueCounter atomic.Int64

// uniqueName returns a table or stream name no other test in this run uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, uniqueCounter.Add(1))
}

func TestMain(m *testing.M) {
	// KCL_EMULATOR_LOG names a file that receives the emulators' own output, to diagnose an emulator failure.
	if path := os.Getenv("KCL_EMULATOR_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		testEmulators.Options.Output = f // closed when the process exits
	}
	os.Exit(testEmulators.Run(m))
}
