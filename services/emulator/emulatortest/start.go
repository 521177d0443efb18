// Package emulatortest starts the local emulators of package emulator for tests and benchmarks, and stops them when
// the test (StartForTest) or the package's tests (Shared) end. It is the only part that imports testing, so the
// local pipeline's binary does not link it.
package emulatortest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamproc/streamproc/services/emulator"
)

// StartForTest starts the emulators for a test or benchmark and stops them when it ends. It fails the test,
// never skips it, when an emulator cannot start: a missing emulator is a broken set-up, not a reason to pass.
func StartForTest(tb testing.TB, opts emulator.Options) *emulator.Emulators {
	tb.Helper()
	e, err := emulator.Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start emulators: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Stop(); err != nil {
			tb.Errorf("stop emulators: %v", err)
		}
	})
	return e
}

// CreateStream creates a provisioned stream on kinesis-local and waits until it is ACTIVE; it fails tb otherwise.
func CreateStream(ctx context.Context, tb testing.TB, client *kinesis.Client, name string, shards int) {
	tb.Helper()
	if err := emulator.CreateStream(ctx, client, name, shards); err != nil {
		tb.Fatal(err)
	}
}

// WaitStreamActive waits until the stream is ACTIVE (after a resharding operation); it fails tb otherwise.
func WaitStreamActive(ctx context.Context, tb testing.TB, client *kinesis.Client, name string) {
	tb.Helper()
	if err := emulator.WaitStreamActive(ctx, client, name); err != nil {
		tb.Fatal(err)
	}
}
