package pipeline

import (
	"os/exec"
	"syscall"
)

// setChildAttributes puts a service in its own process group, so a terminal's Ctrl-C reaches only the runner, which
// stops the services in order, and asks the kernel to kill the service if the runner itself is killed.
func setChildAttributes(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
