package autoscaler

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// GoBundler builds a Go Lambda handler on the machine running the synth (awscdk.ILocalBundling), so no Docker
// engine is needed: `go build` cross-compiles a static linux/arm64 binary named bootstrap for provided.al2023.
// The build is reproducible (-trimpath, -buildvcs=false), so the asset hash, and a `cdk diff`, change only when the
// handler's code or its dependencies change.
type GoBundler struct {
	// ModuleRoot is the directory of go.mod; the build runs there.
	ModuleRoot string
	// Package is the handler's package path relative to ModuleRoot, such as ./lambda/autoscaler.
	Package string
}

// BuildArgs are the arguments of the go command that builds the handler into outputDir.
func (b GoBundler) BuildArgs(outputDir string) []string {
	return []string{"build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
		"-o", filepath.Join(outputDir, "bootstrap"), b.Package}
}

// TryBundle builds the handler into outputDir. A failed build ends the synth with the compiler's output (a panic
// reported through jsii) instead of returning false, which would make the CDK fall back to a Docker build that is
// not wanted here.
func (b *GoBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	cmd := exec.Command("go", b.BuildArgs(*outputDir)...)
	cmd.Dir = b.ModuleRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		panic(fmt.Sprintf("autoscaler: go build %s in %s: %v\n%s", b.Package, b.ModuleRoot, err, out.String()))
	}
	return jsii.Bool(true)
}
