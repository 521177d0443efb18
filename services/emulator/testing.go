package emulator

import (
	"context"
	"testing"
)

// StartForTest starts the emulators for a test or benchmark and stops them when it ends. It fails the test,
// never skips it, when an emulator cannot start: a missing emulator is a broken set-up, not a reason to pass.
func StartForTest(tb testing.TB, opts Options) *Emulators {
	tb.Helper()
	e, err := Start(context.Background(), opts)
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
