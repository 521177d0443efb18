package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// service is one child process of the local pipeline: a service binary built from this repository.
type service struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
	waitErr error
	// stopping is set before the pipeline itself ends the process, so its exit is not reported as a failure.
	stopping atomic.Bool
}

// servicesPackage is the import path under which each service's main package lives; building by import path
// works from any directory inside the module.
const servicesPackage = "github.com/streamproc/streamproc/services/"

// buildService builds the service package name into dir and returns the binary's path. Building once and
// running the binary (rather than `go run`) gives each service a PID of its own that stop can signal.
func buildService(ctx context.Context, dir, name string, out io.Writer) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, servicesPackage+name)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return bin, nil
}

// startService starts bin with env, its output appended to logPath (a restarted service continues its log). When
// it exits without the pipeline having asked it to, an error saying so is sent on exited if there is room.
func startService(name, bin string, args, env []string, logPath string, exited chan<- error) (*service, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	setChildAttributes(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &service{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		s.log.Close()
		close(s.done)
		if s.stopping.Load() {
			return
		}
		select {
		case exited <- fmt.Errorf("%s (pid %d) exited on its own (%v); see %s", name, cmd.Process.Pid, s.waitErr, logPath):
		default:
		}
	}()
	return s, nil
}

// pid is the service's process id.
func (s *service) pid() int { return s.cmd.Process.Pid }

// exitErr is how the process ended; call it only after done is closed.
func (s *service) exitErr() error { return s.waitErr }

// running reports whether the process has not exited yet.
func (s *service) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// kill ends the service with SIGKILL, as a crash or an out-of-memory kill would, and waits for it to be gone.
func (s *service) kill() error {
	s.stopping.Store(true)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", s.name, s.pid(), err)
	}
	<-s.done
	return nil
}

// stop sends SIGTERM, waits up to timeout for the service's own graceful shutdown, then kills it.
func (s *service) stop(timeout time.Duration) error {
	s.stopping.Store(true)
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", s.name, s.pid(), err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("%s (pid %d) stopped with an error: %w; see its log", s.name, s.pid(), s.waitErr)
		}
		return nil
	case <-timer.C:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("%s (pid %d) did not stop within %s and was killed", s.name, s.pid(), timeout)
}
