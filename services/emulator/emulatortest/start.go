// Package emulatortest starts the local emulators of package emulator for tests and benchmarks, and stops them when
// the test (StartForTest) or the package's tests (Shared) end. It is the only part that imports testing, so the
// local pipeline's binary does not link it.
package emulatortest

import (
	"context"
	"testing"

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
