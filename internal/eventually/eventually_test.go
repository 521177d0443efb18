package eventually

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheCheckSucceeds(t *testing.T) {
	// GIVEN a condition that holds from the third check on
	var calls atomic.Int32
	check := func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	}
	// WHEN waited for
	err := Within(10*time.Second, check)
	// THEN it returns nil after exactly three checks
	if err != nil || calls.Load() != 3 {
		t.Fatalf("Within = %v after %d checks, want nil after 3", err, calls.Load())
	}
}

func TestWithinReportsTheLastErrorAtTheTimeout(t *testing.T) {
	// GIVEN a condition that never holds and says what it sees
	var calls atomic.Int32
	check := func() error { return fmt.Errorf("seen %d", calls.Add(1)) }
	// WHEN waited for briefly
	err := Within(50*time.Millisecond, check)
	// THEN the error names the timeout and the last check's error, which was the last call's
	want := fmt.Sprintf("after 50ms: seen %d", calls.Load())
	if err == nil || err.Error() != want {
		t.Fatalf("Within = %v, want %q", err, want)
	}
	if calls.Load() < 2 {
		t.Fatalf("checked %d times in 50 ms, want several", calls.Load())
	}
}

// fatalRecorder stands for a test: it records Fatal instead of ending the goroutine.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper()           {}
func (r *fatalRecorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }

func TestSucceedsFailsTheTestWithTheLastError(t *testing.T) {
	// GIVEN a condition that never holds
	tb := &fatalRecorder{TB: t}
	// WHEN Succeeds waits for it
	Succeeds(tb, 20*time.Millisecond, func() error { return errors.New("2 of 4 leases held") })
	// THEN the test fails with what the check saw
	if !strings.Contains(tb.fatal, "2 of 4 leases held") {
		t.Fatalf("Fatal(%q), want the check's error", tb.fatal)
	}
}
