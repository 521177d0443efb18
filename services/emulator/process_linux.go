package emulator

import (
	"os/exec"
	"syscall"
)

// setChildAttributes puts an emulator in its own process group, so a Ctrl-C meant for the program that started
// it does not stop it before that program has flushed its work, and asks the kernel to kill it if that program
// dies without calling Stop.
func setChildAttributes(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
