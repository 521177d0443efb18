// Package source locates the Go module the stack builds from and describes the Docker build context of a service
// image, so that the constructs of the producer and consumer services stage the same small context.
package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/jsii-runtime-go"
)

// ModuleRoot returns the directory holding go.mod, searched from dir upwards. The app runs from the repository root
// (cdk.json) and the tests from their package directory: both find the same root.
func ModuleRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("module root: %w", err)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("module root: no go.mod in %s or above it", abs)
		}
	}
}

// contextPatterns keep only what the services' Dockerfiles copy (go.mod, go.sum, services/) in the staged build
// context, so the asset hash, and with it the image tag, changes only when the service code changes, not when the
// CDK code, the Lambda or the docs do. The root .dockerignore still applies on top.
var contextPatterns = []string{"*", "!go.mod", "!go.sum", "!services"}

// ServiceImage is the arm64 image built from the Dockerfile at dockerfile (relative to root) with root as the build
// context. Synth only stages the context into cdk.out; the image is built and pushed by `cdk deploy`.
func ServiceImage(root, dockerfile string) awsecs.ContainerImage {
	exclude := make([]*string, len(contextPatterns))
	for i, p := range contextPatterns {
		exclude[i] = jsii.String(p)
	}
	return awsecs.ContainerImage_FromAsset(jsii.String(root), &awsecs.AssetImageProps{
		File:       jsii.String(dockerfile),
		Platform:   awsecrassets.Platform_LINUX_ARM64(),
		Exclude:    &exclude,
		IgnoreMode: awscdk.IgnoreMode_DOCKER,
	})
}
