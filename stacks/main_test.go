package stacks_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamproc/streamproc/constructs/stream"
	"github.com/streamproc/streamproc/stacks"
)

// update rewrites the committed template snapshot from this run's synth: go test ./stacks -run TestSnapshot -update
var update = flag.Bool("update", false, "rewrite testdata/"+snapshotStack+".template.json from the synthesized template")

// The test app holds three stacks, synthesized once for the whole package (node starts once):
//   - snapshotStack: every default, exactly as `make synth` builds it (same context from cdk.json), provisioned;
//   - variantStack: HTTPS with a certificate, two NAT gateways, interface endpoints, retained data, other sizes and
//     scaling cooldowns, the Python consumer image running a MultiLang record processor;
//   - onDemandStack: the defaults in on-demand capacity mode.
const (
	snapshotStack = "StreamProc"
	variantStack  = "StreamProcVariant"
	onDemandStack = "StreamProcOnDemand"
	variantCert   = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
)

// allStacks are the three stacks of the test app.
var allStacks = []string{snapshotStack, variantStack, onDemandStack}

// onDemandConfig is on-demand with a shard count a provisioned stream would refuse (above maxShards): on-demand
// uses no shard setting, so none is checked.
var onDemandConfig = stacks.Config{CapacityMode: stream.OnDemand, ShardCount: 40}

var variantConfig = stacks.Config{
	ShardCount: 8, RetentionHours: 48, MinShards: 2, MaxShards: 32,
	ProducerCPU: 1024, ProducerMemoryMiB: 2048, ProducerMinTasks: 2, ProducerMaxTasks: 20,
	ConsumerCPU: 256, ConsumerMemoryMiB: 512, ConsumerMinTasks: 2, ConsumerMaxTasks: 8,
	NatGateways: 2, InterfaceEndpoints: true, CertificateArn: variantCert, LogRetentionDays: 90,
	RetainData: true, AutoscalerDryRun: true,
	ProducerScaleOutCooldownSeconds: 30, ProducerScaleInCooldownSeconds: 300,
	ConsumerScaleOutCooldownSeconds: 20, ConsumerScaleInCooldownSeconds: 120,
	ConsumerDockerfile: stacks.ConsumerPythonDockerfile, ConsumerProcessorCommand: "python3 /app/sample_kclpy_app.py",
}

// synthesized is the package's one synth.
var synthesized struct {
	outdir                      string
	defaults, variant, onDemand *stacks.StreamProcStack
	tDefaults                   assertions.Template
	tVariant                    assertions.Template
	tOnDemand                   assertions.Template
	// raw are the templates as written to outdir, by stack name.
	raw map[string]map[string]any
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		defer jsii.Close()
		if err := synth(); err != nil {
			fmt.Fprintln(os.Stderr, "synth:", err)
			return 1
		}
		defer os.RemoveAll(synthesized.outdir)
		return m.Run()
	}()
	os.Exit(code)
}

// synth builds both stacks in one app with cdk.json's context (feature flags and defaults), runs cdk-nag over it
// as app.go does, and writes the cloud assembly to a temporary directory.
func synth() error {
	outdir, err := os.MkdirTemp("", "streamproc-cdk-out-")
	if err != nil {
		return err
	}
	synthesized.outdir = outdir
	cdkJSON, err := os.ReadFile(filepath.Join("..", "cdk.json"))
	if err != nil {
		return err
	}
	var cdk struct {
		Context          map[string]any `json:"context"`
		VersionReporting *bool          `json:"versionReporting"`
	}
	if err := json.Unmarshal(cdkJSON, &cdk); err != nil {
		return fmt.Errorf("cdk.json: %w", err)
	}
	ctx := map[string]any{}
	for k, v := range cdk.Context {
		ctx[k] = v
	}
	reporting := cdk.VersionReporting == nil || *cdk.VersionReporting
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir), Context: &ctx, AnalyticsReporting: jsii.Bool(reporting)})
	cfg, err := stacks.ConfigFromContext(app.Node())
	if err != nil {
		return err
	}
	synthesized.defaults = stacks.NewStreamProcStack(app, snapshotStack, &stacks.StreamProcStackProps{Config: cfg})
	synthesized.variant = stacks.NewStreamProcStack(app, variantStack, &stacks.StreamProcStackProps{Config: variantConfig})
	synthesized.onDemand = stacks.NewStreamProcStack(app, onDemandStack, &stacks.StreamProcStackProps{Config: onDemandConfig})
	stacks.ApplyNag(app)
	app.Synth(nil)
	synthesized.tDefaults = assertions.Template_FromStack(synthesized.defaults.Stack, nil)
	synthesized.tVariant = assertions.Template_FromStack(synthesized.variant.Stack, nil)
	synthesized.tOnDemand = assertions.Template_FromStack(synthesized.onDemand.Stack, nil)
	synthesized.raw = map[string]map[string]any{}
	for _, name := range allStacks {
		b, err := os.ReadFile(filepath.Join(outdir, name+".template.json"))
		if err != nil {
			return err
		}
		var t map[string]any
		if err := json.Unmarshal(b, &t); err != nil {
			return fmt.Errorf("%s template: %w", name, err)
		}
		synthesized.raw[name] = t
	}
	return nil
}
