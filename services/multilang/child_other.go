//go:build !unix

package multilang

import "os/exec"

// setProcessGroup does nothing where process groups do not exist.
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the child itself.
func killProcessGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
