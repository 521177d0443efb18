//go:build !linux

package pipeline

import (
	"os/exec"
	"syscall"
)

// setChildAttributes puts a service in its own process group, so a terminal's Ctrl-C reaches only the runner, which
// stops the services in order. (Only Linux can also tie the service's life to the runner's.)
func setChildAttributes(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
