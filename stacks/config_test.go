package stacks_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/streamproc/streamproc/constructs/stream"
	"github.com/streamproc/streamproc/stacks"
)

func TestConfigFromContext(t *testing.T) {
	tests := map[string]struct {
		context map[string]any
		want    stacks.Config
		err     string
	}{
		"empty context: zero Config, every default": {context: map[string]any{}, want: stacks.Config{}},
		"cdk.json types": {
			context: map[string]any{stacks.ContextShardCount: 7, stacks.ContextInterfaceEndpoints: true, stacks.ContextCertificateArn: "arn:x"},
			want:    stacks.Config{ShardCount: 7, InterfaceEndpoints: true, CertificateArn: "arn:x"},
		},
		"-c strings": {
			context: map[string]any{stacks.ContextProducerMaxTasks: "20", stacks.ContextRetainData: "true", stacks.ContextConsumerReadMode: "polling",
				stacks.ContextConsumerScaleInCooldown: "300"},
			want: stacks.Config{ProducerMaxTasks: 20, RetainData: true, ConsumerReadMode: "polling", ConsumerScaleInCooldownSeconds: 300},
		},
		"the lake": {
			context: map[string]any{stacks.ContextConsumerSink: "log", stacks.ContextLakeFormat: "ndjson",
				stacks.ContextLakeIntelligentTieringDays: "-1", stacks.ContextLakeExpirationDays: 365.0},
			want: stacks.Config{ConsumerSink: "log", LakeFormat: "ndjson", LakeIntelligentTieringDays: -1, LakeExpirationDays: 365},
		},
		"not a number":        {context: map[string]any{stacks.ContextShardCount: "five"}, err: "context shardCount=five: want a whole number"},
		"fraction":            {context: map[string]any{stacks.ContextNatGateways: 1.5}, err: "context natGateways=1.5: want a whole number"},
		"not a boolean":       {context: map[string]any{stacks.ContextRetainData: "maybe"}, err: "context retainData=maybe: want true or false"},
		"certificate non-str": {context: map[string]any{stacks.ContextCertificateArn: 5}, err: "context certificateArn=5: want a string"},
		"on-demand":           {context: map[string]any{stacks.ContextCapacityMode: "onDemand"}, want: stacks.Config{CapacityMode: stream.OnDemand}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			app := awscdk.NewApp(&awscdk.AppProps{Context: &tc.context})
			got, err := stacks.ConfigFromContext(app.Node())
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ConfigFromContext = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestInvalidConfigStopsTheSynth(t *testing.T) {
	tests := map[string]struct {
		cfg  stacks.Config
		want string
	}{
		"shards above the autoscaler's maximum":  {stacks.Config{ShardCount: 40}, "shardCount=40: want between minShards=1 and maxShards=16"},
		"unknown read mode":                      {stacks.Config{ConsumerReadMode: "push"}, `consumerReadMode="push": want "fanout" or "polling"`},
		"unknown capacity mode":                  {stacks.Config{CapacityMode: "serverless"}, `capacityMode="serverless": want "provisioned" or "onDemand"`},
		"log retention CloudWatch does not have": {stacks.Config{LogRetentionDays: 31}, "logRetentionDays=31"},
		"three NAT gateways in two AZs":          {stacks.Config{NatGateways: 3}, "NatGateways is 3, want 1 to 2"},
		"cooldown above an hour":                 {stacks.Config{ProducerScaleInCooldownSeconds: 3601}, "producerScaleInCooldownSeconds=3601: want 1 to 3600 seconds"},
		"Dockerfile outside the image context":   {stacks.Config{ConsumerDockerfile: "../Dockerfile"}, `consumerDockerfile="../Dockerfile": want a Dockerfile under services/`},
		"absolute Dockerfile":                    {stacks.Config{ConsumerDockerfile: "/services/Dockerfile"}, `consumerDockerfile="/services/Dockerfile": want a Dockerfile under services/`},
		"missing Dockerfile":                     {stacks.Config{ConsumerDockerfile: "services/consumer/ruby.Dockerfile"}, `consumerDockerfile="services/consumer/ruby.Dockerfile": stat`},
		"unknown sink":                           {stacks.Config{ConsumerSink: "kafka"}, `consumerSink="kafka": want "s3" or "log"`},
		"unknown lake format":                    {stacks.Config{LakeFormat: "csv"}, `lakeFormat="csv": want "parquet" or "ndjson"`},
		"expiry before tiering":                  {stacks.Config{LakeExpirationDays: 10}, "lakeIntelligentTieringDays=30, lakeExpirationDays=10"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			msg := func() (msg string) {
				defer func() { msg = fmt.Sprint(recover()) }()
				stacks.NewStreamProcStack(awscdk.NewApp(nil), "Invalid", &stacks.StreamProcStackProps{Config: tc.cfg, ModuleRoot: ".."})
				return ""
			}()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("panic %q, want it to say %q", msg, tc.want)
			}
		})
	}
}
