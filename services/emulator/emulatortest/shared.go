package emulatortest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/emulator"
)

// sharedStartTimeout bounds the first start of a Shared, emulator processes included.
const sharedStartTimeout = 2 * time.Minute

// Shared is a set of emulators that all the tests of one package share: started on the first Get, so tests that
// need none run without them, and stopped by Run once every test has finished. Declare one per package and
// call Run from TestMain:
//
//	var emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true}}
//
//	func TestMain(m *testing.M) { os.Exit(emulators.Run(m)) }
//
// Set Options before the first Get; later changes are ignored.
type Shared struct {
	// Options are the emulators to start.
	Options emulator.Options

	once sync.Once
	e    *emulator.Emulators
	err  error
}

// Get returns the shared emulators, starting them on the first call. When they cannot start it fails tb (never
// skips it) with Start's error, which names the missing emulator, and every later Get fails the same way.
func (s *Shared) Get(tb testing.TB) *emulator.Emulators {
	tb.Helper()
	e, err := s.Start()
	if err != nil {
		tb.Fatalf("the emulators this test needs did not start: %v", err)
	}
	return e
}

// Start is Get for code that has no testing.TB, such as runnable examples: it returns Start's error instead of
// failing a test.
func (s *Shared) Start() (*emulator.Emulators, error) {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		defer cancel()
		s.e, s.err = emulator.Start(ctx, s.Options)
	})
	return s.e, s.err
}

// Run runs the package's tests, then stops the emulators if a test started them, and returns m.Run's exit code
// for os.Exit. A failure to stop is reported on stderr: the tests' verdict stands.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	if err := s.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop emulators: %v\n", err)
	}
	return code
}

// stop stops the emulators if Get started them.
func (s *Shared) stop() error {
	if s.e == nil {
		return nil
	}
	return s.e.Stop()
}
