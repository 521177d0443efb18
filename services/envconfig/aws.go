package envconfig

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Variables of the AWS SDK that decide how a service pointed at emulators authenticates.
const (
	// EnvRegion is the AWS region. Default: the SDK's usual sources (the task's region on ECS), or LocalRegion
	// when an endpoint is overridden.
	EnvRegion = "AWS_REGION"
	// envDefaultRegion is the SDK's older spelling of EnvRegion.
	envDefaultRegion = "AWS_DEFAULT_REGION"
	envAccessKeyID   = "AWS_ACCESS_KEY_ID"
	envProfile       = "AWS_PROFILE"
)

// LocalRegion is the region used against emulators when none is set.
const LocalRegion = "us-east-1"

// AWS is how a service reaches AWS or, with endpoint overrides, the local emulators.
type AWS struct {
	// Region is EnvRegion; empty leaves it to the SDK. Default with an endpoint override: LocalRegion.
	Region string
	// LocalCredentials is set when an endpoint is overridden and the environment names no AWS credentials
	// (AWS_ACCESS_KEY_ID, AWS_PROFILE): emulators accept any, so static dummy ones are used.
	LocalCredentials bool
}

// AWS reads the region and decides on local credentials; local tells whether any endpoint is overridden.
func (p *Parser) AWS(local bool) AWS {
	a := AWS{Region: p.String(EnvRegion)}
	if !local {
		return a
	}
	if a.Region == "" && p.String(envDefaultRegion) == "" {
		a.Region = LocalRegion
	}
	a.LocalCredentials = p.String(envAccessKeyID) == "" && p.String(envProfile) == ""
	return a
}

// Config loads the SDK's default configuration with a's region and credentials.
func (a AWS) Config(ctx context.Context) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if a.Region != "" {
		opts = append(opts, config.WithRegion(a.Region))
	}
	if a.LocalCredentials {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set %s", EnvRegion)
	}
	return cfg, nil
}
