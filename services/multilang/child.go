package multilang

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// maxLineBytes bounds one line the child writes. A protocol message is a few hundred bytes; a longer line is stray
// output, logged cut short and skipped, so a child that prints without newlines cannot grow the host's memory.
const maxLineBytes = 1 << 20

// maxLoggedLine is how much of a stray stdout line or a stderr line is logged.
const maxLoggedLine = 2048

// child is one running record processor: its stdin takes the host's messages, its stdout gives protocol messages
// (other lines are logged and skipped, as the Java daemon does), and its stderr goes to the log line by line.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *slog.Logger

	// messages carries what the stdout reader decoded: a message, or a protocol violation. It is closed when
	// stdout ends (the child exited or closed it).
	messages chan decodedLine
	// exited is closed once the process has exited and its output was read; exitErr is then its exit status.
	exited  chan struct{}
	exitErr error
	// killedBecause is why the host killed the child (empty when it did not): it explains the end of its output.
	killedBecause atomic.Pointer[string]
	killOnce      sync.Once
}

// decodedLine is one protocol line of the child's stdout.
type decodedLine struct {
	msg childMessage
	err error // errProtocol
}

// startChild starts command with stdin and stdout as the protocol's pipes and stderr logged. env is added to the
// host's environment.
func startChild(command []string, dir string, env []string, log *slog.Logger) (*child, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	setProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start record processor %q: %w", command, err)
	}
	c := &child{cmd: cmd, stdin: stdin, log: log.With("pid", cmd.Process.Pid),
		messages: make(chan decodedLine, 1), exited: make(chan struct{})}
	var output sync.WaitGroup
	output.Go(func() { c.readStdout(stdout) })
	output.Go(func() { c.logStderr(stderr) })
	go func() {
		// Wait closes the pipes, so the output is read to its end first.
		output.Wait()
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// readStdout decodes the child's stdout line by line into messages until it ends.
func (c *child) readStdout(stdout io.Reader) {
	defer close(c.messages)
	forEachLine(stdout, func(line []byte, cut bool) {
		if cut {
			c.log.Warn("record processor wrote an overlong line on stdout; skipped", "line", truncate(line))
			return
		}
		msg, err := decodeChildMessage(line)
		switch {
		case errors.Is(err, errNotAMessage):
			if len(bytes.TrimSpace(line)) > 0 {
				c.log.Info("record processor wrote a line that is not a MultiLang message on stdout; skipped", "line", truncate(line))
			}
			return
		case err != nil:
			c.messages <- decodedLine{msg: msg, err: err}
		default:
			c.messages <- decodedLine{msg: msg}
		}
	})
}

// logStderr logs each line of the child's stderr.
func (c *child) logStderr(stderr io.Reader) {
	forEachLine(stderr, func(line []byte, _ bool) {
		c.log.Info("record processor stderr", "line", truncate(bytes.TrimRight(line, "\r")))
	})
}

// forEachLine calls fn with each line of r, without its newline; the slice is valid only during the call. A line
// longer than maxLineBytes is given once, cut to that length, with cut set, and the rest of it is dropped.
func forEachLine(r io.Reader, fn func(line []byte, cut bool)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	dropping := false
	for {
		frag, err := br.ReadSlice('\n')
		if !dropping {
			line = append(line, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if !dropping && len(line) >= maxLineBytes {
				fn(line[:maxLineBytes], true)
				dropping, line = true, line[:0]
			}
			continue
		}
		if !dropping && len(line) > 0 {
			fn(bytes.TrimSuffix(line, []byte{'\n'}), false)
		}
		dropping, line = false, line[:0]
		if err != nil {
			return
		}
	}
}

func truncate(line []byte) string {
	if len(line) > maxLoggedLine {
		return string(line[:maxLoggedLine]) + "…"
	}
	return string(line)
}

// send writes one message line to the child's stdin.
func (c *child) send(msg []byte) error {
	if _, err := c.stdin.Write(msg); err != nil {
		return c.failure(fmt.Errorf("write to the record processor: %w", err))
	}
	return nil
}

// next returns the child's next protocol message. It fails when the child ends its output or exits, or wrote a
// message that breaks the protocol.
func (c *child) next() (childMessage, error) {
	line, ok := <-c.messages
	if !ok {
		<-c.exited
		return childMessage{}, c.failure(errors.New("record processor ended its output"))
	}
	return line.msg, line.err
}

// failure explains err by what happened to the child: killed by the host, or exited (with its status).
func (c *child) failure(err error) error {
	if why := c.killedBecause.Load(); why != nil {
		return fmt.Errorf("%s: %w", *why, err)
	}
	select {
	case <-c.exited:
		return fmt.Errorf("%w (it exited: %v)", err, exitStatus(c.exitErr))
	case <-time.After(100 * time.Millisecond): // a write may fail a moment before the exit is reaped
		return err
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// kill ends the child and its process group at once; why is what the host's log and errors say of it.
func (c *child) kill(why string) {
	c.killOnce.Do(func() {
		c.killedBecause.Store(&why)
		killProcessGroup(c.cmd)
	})
}

// stop ends a child that has answered its last action: its stdin is closed (record processor libraries exit at the
// end of their input), then it has grace to exit before it is killed. It returns the exit status.
func (c *child) stop(grace time.Duration) error {
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(grace):
		c.kill(fmt.Sprintf("record processor still running %v after its input ended; killed", grace))
		<-c.exited
	}
	return c.exitErr
}

// done reports whether the child has exited.
func (c *child) done() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}
