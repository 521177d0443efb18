package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
}

// servicesPackage is the import path under which each service's main package lives; building by import path
// works from any directory inside the module.
const servicesPackage = "github.com/streamproc/streamproc/services/"

// buildService builds the service package name into dir and returns the binary's path. Building once and
// running the binary (rather than `go run`) gives each service a PID of its own that stop can signal.
func buildService(ctx context.Context, dir, name string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, servicesPackage+name)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return bin, nil
}

// startService starts bin with env, its output going to logPath. When it exits, it is sent on exited if there is
// room (the runner only needs the first).
func startService(name, bin string, env []string, logPath string, exited chan<- *service) (*service, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	// Its own process group keeps a terminal's Ctrl-C away from it: the runner stops the services in order.
	// Pdeathsig stops it if the runner itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &service{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
		select {
		case exited <- s:
		default:
		}
	}()
	return s, nil
}

// pid is the service's process id.
func (s *service) pid() int { return s.cmd.Process.Pid }

// exitErr is how the process ended; call it only after done is closed.
func (s *service) exitErr() error { return s.waitErr }

// stop sends SIGTERM, waits up to timeout for the service's own graceful shutdown, then kills it.
func (s *service) stop(timeout time.Duration) error {
	defer s.log.Close()
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", s.name, s.pid(), err)
	}
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("%s (pid %d) stopped with an error: %w; see its log", s.name, s.pid(), s.waitErr)
		}
		return nil
	case <-time.After(timeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("%s (pid %d) did not stop within %s and was killed", s.name, s.pid(), timeout)
}
