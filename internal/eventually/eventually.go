// Package eventually waits, in tests, for a condition that other goroutines, processes or emulators make true.
//
// It replaces hand-written poll-until-deadline loops: the check is a function that returns nil once the condition
// holds, or an error that says what it sees instead, and that last error is what a timed-out test reports.
//
//	eventually.Succeeds(t, 30*time.Second, func() error {
//		if n := len(w.HeldLeases()); n < 4 {
//			return fmt.Errorf("worker holds %d leases, want 4", n)
//		}
//		return nil
//	})
package eventually

import (
	"fmt"
	"testing"
	"time"
)

// Polling starts at firstInterval and doubles up to maxInterval, so a condition that holds quickly is seen quickly
// and a slow one does not flood an emulator with calls.
const (
	firstInterval = 10 * time.Millisecond
	maxInterval   = 200 * time.Millisecond
)

// Succeeds calls check until it returns nil and fails tb (Fatalf) when timeout passes first, with check's last
// error. It must be called from the test's goroutine.
func Succeeds(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	if err := Within(timeout, check); err != nil {
		tb.Fatal(err)
	}
}

// Within calls check until it returns nil, and returns nil; or, when timeout passes first, an error that wraps
// check's last error. It suits goroutines other than the test's, and tests that report a timeout their own way.
func Within(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for interval := firstInterval; ; interval = min(2*interval, maxInterval) {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
	}
}
