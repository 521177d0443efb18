//go:build unix

package multilang

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the child in a process group of its own, so that killing it also kills what it started (a
// shell wrapper's interpreter, for example) and a terminal's Ctrl-C reaches only the consumer, which stops the
// children in order.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the child's process group.
func killProcessGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
