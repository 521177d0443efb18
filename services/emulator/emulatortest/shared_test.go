package emulatortest

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/streamproc/streamproc/services/emulator"
)

// recordingTB stands for a test that Get fails: it records Fatalf instead of stopping the goroutine.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func TestSharedStartsOnceAndStops(t *testing.T) {
	// GIVEN a Shared kinesis-local
	s := &Shared{Options: emulator.Options{Kinesis: true}}
	// WHEN two tests get it
	first := s.Get(t)
	second := s.Get(t)
	// THEN they share one running set, which stop ends
	if first != second {
		t.Fatalf("Get started a second set: %p and %p", first, second)
	}
	if _, err := first.KinesisClient().ListStreams(t.Context(), nil); err != nil {
		t.Fatalf("shared kinesis-local does not answer: %v", err)
	}
	pids := first.PIDs()
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after stop (kill 0: %v)", pid, err)
		}
	}
}

func TestSharedFailsEveryTestWhenStartFails(t *testing.T) {
	// GIVEN a Shared whose emulator is not installed
	s := &Shared{Options: emulator.Options{Kinesis: true, Root: t.TempDir()}}
	// WHEN two tests get it
	for i := range 2 {
		tb := &recordingTB{TB: t}
		if e := s.Get(tb); e != nil {
			t.Errorf("Get %d returned emulators from a failed start", i)
		}
		// THEN each fails, with Start's explanation
		if len(tb.failures) != 1 || !strings.Contains(tb.failures[0], "npm ci") {
			t.Errorf("Get %d failures = %q, want one naming `npm ci`", i, tb.failures)
		}
	}
	// AND there is nothing to stop
	if err := s.stop(); err != nil {
		t.Errorf("stop after a failed start: %v", err)
	}
}
