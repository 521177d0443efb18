package stacks

import (
	"cmp"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/streamproc/streamproc/constructs/autoscaler"
	"github.com/streamproc/streamproc/constructs/consumerservice"
	"github.com/streamproc/streamproc/constructs/datalake"
	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/constructs/network"
	"github.com/streamproc/streamproc/constructs/producerservice"
	"github.com/streamproc/streamproc/constructs/stream"
	"github.com/streamproc/streamproc/services/s3sink"
)

// Context keys: the values users set in cdk.json's "context" or with `cdk synth -c key=value`.
const (
	ContextShardCount         = "shardCount"
	ContextRetentionHours     = "retentionHours"
	ContextMinShards          = "minShards"
	ContextMaxShards          = "maxShards"
	ContextProducerCPU        = "producerCpu"
	ContextProducerMemoryMiB  = "producerMemoryMiB"
	ContextProducerMinTasks   = "producerMinTasks"
	ContextProducerMaxTasks   = "producerMaxTasks"
	ContextConsumerCPU        = "consumerCpu"
	ContextConsumerMemoryMiB  = "consumerMemoryMiB"
	ContextConsumerMinTasks   = "consumerMinTasks"
	ContextConsumerMaxTasks   = "consumerMaxTasks"
	ContextNatGateways        = "natGateways"
	ContextInterfaceEndpoints = "interfaceEndpoints"
	ContextCertificateArn     = "certificateArn"
	ContextLogRetentionDays   = "logRetentionDays"
	ContextRetainData         = "retainData"
	ContextAutoscalerDryRun   = "autoscalerDryRun"
	ContextConsumerReadMode   = "consumerReadMode"
	// ContextConsumerDockerfile names the consumer image's Dockerfile, relative to the module root and under
	// services/ (the image's build context): services/consumer/python.Dockerfile runs a Python MultiLang record
	// processor.
	ContextConsumerDockerfile = "consumerDockerfile"
	// ContextConsumerProcessorCommand, when set, makes the consumer run this MultiLang record processor command
	// (PROCESSOR=multilang), which the consumer image must hold.
	ContextConsumerProcessorCommand = "consumerProcessorCommand"
	ContextCapacityMode             = "capacityMode"
	// ContextConsumerSink is "s3" (the consumer lands the records in the stack's data lake, exactly once) or "log"
	// (each record a JSON line in the consumer's log, as the blog's walkthrough tails it). The lake is built only
	// for the Go consumer's own processor: a MultiLang processor (consumerProcessorCommand, or another
	// consumerDockerfile) keeps its own output.
	ContextConsumerSink = "consumerSink"
	// ContextLakeFormat is the objects' format: "parquet" or "ndjson" (gzip JSON lines).
	ContextLakeFormat = "lakeFormat"
	// ContextLakeIntelligentTieringDays moves the lake's objects to S3 Intelligent-Tiering after this many days
	// (-1: never); ContextLakeExpirationDays deletes them after this many (0: never).
	ContextLakeIntelligentTieringDays = "lakeIntelligentTieringDays"
	ContextLakeExpirationDays         = "lakeExpirationDays"
	// The services' CPU scaling cooldowns, in seconds.
	ContextProducerScaleOutCooldown = "producerScaleOutCooldownSeconds"
	ContextProducerScaleInCooldown  = "producerScaleInCooldownSeconds"
	ContextConsumerScaleOutCooldown = "consumerScaleOutCooldownSeconds"
	ContextConsumerScaleInCooldown  = "consumerScaleInCooldownSeconds"
)

// Values of ContextConsumerSink.
const (
	SinkS3  = "s3"
	SinkLog = "log"
)

// Defaults of Config that are the stack's own (the others are the constructs' defaults).
const (
	DefaultConsumerCPU       = 512
	DefaultConsumerMemoryMiB = 1024
	DefaultConsumerMinTasks  = 1
	// DefaultConsumerMaxTasks: a worker holds at least one lease, so more workers than shards would idle.
	DefaultConsumerMaxTasks = 10
	DefaultLogRetentionDays = 30
)

// Config is what users choose for a deployment. The zero value of every field means its documented default.
type Config struct {
	// CapacityMode is "provisioned" (a shard count and the shard autoscaler) or "onDemand" (Kinesis sizes the
	// stream; no autoscaler). Default: "provisioned".
	CapacityMode stream.CapacityMode
	// ShardCount is the stream's initial shard count (provisioned). Default: stream.DefaultShardCount (5).
	ShardCount int
	// RetentionHours is the stream's retention. Default: stream.DefaultRetentionHours (24).
	RetentionHours int
	// MinShards and MaxShards bound the shard autoscaler (provisioned). Default: autoscaler.DefaultMinShards (1) and
	// autoscaler.DefaultMaxShards (16).
	MinShards, MaxShards int
	// ProducerCPU, ProducerMemoryMiB: the producer task size. Default: 512 CPU units, 1024 MiB.
	ProducerCPU, ProducerMemoryMiB int
	// ProducerMinTasks, ProducerMaxTasks bound the producer's CPU scaling. Default: 1 and 15.
	ProducerMinTasks, ProducerMaxTasks int
	// ConsumerCPU, ConsumerMemoryMiB: the consumer task size. Default: 512 CPU units, 1024 MiB.
	ConsumerCPU, ConsumerMemoryMiB int
	// ConsumerMinTasks, ConsumerMaxTasks bound the consumer's CPU scaling. Default: 1 and 10.
	ConsumerMinTasks, ConsumerMaxTasks int
	// ProducerScaleOutCooldownSeconds, ProducerScaleInCooldownSeconds space the producer's CPU scaling steps (1 to
	// 3600). Default: producerservice.DefaultScaleOutCooldown and DefaultScaleInCooldown (60 and 60, the blog's).
	ProducerScaleOutCooldownSeconds, ProducerScaleInCooldownSeconds int
	// ConsumerScaleOutCooldownSeconds, ConsumerScaleInCooldownSeconds space the consumer's CPU scaling steps (1 to
	// 3600). Default: consumerservice.DefaultScaleOutCooldown and DefaultScaleInCooldown (10 and 10, the blog's).
	ConsumerScaleOutCooldownSeconds, ConsumerScaleInCooldownSeconds int
	// NatGateways is the number of NAT gateways (1 or 2). Default: network.DefaultNatGateways (1).
	NatGateways int
	// InterfaceEndpoints adds Kinesis, ECR and CloudWatch Logs interface endpoints. Default: false.
	InterfaceEndpoints bool
	// CertificateArn switches the load balancer to HTTPS on 443 (HTTP redirects). Default: "" (HTTP only).
	CertificateArn string
	// LogRetentionDays is the retention of every log group (one of CloudWatch's values). Default: 30.
	LogRetentionDays int
	// RetainData keeps the stream and the lease table when the stack is deleted. Default: false (both are deleted
	// with the stack: the records live 24 h anyway, and checkpoints mean nothing without their stream).
	RetainData bool
	// ConsumerReadMode is "fanout" (enhanced fan-out through the registered consumer) or "polling" (GetRecords).
	// Default: "fanout".
	ConsumerReadMode string
	// AutoscalerDryRun makes the shard autoscaler decide and log without resharding. Default: false.
	AutoscalerDryRun bool
	// ConsumerDockerfile is the consumer image's Dockerfile, relative to the module root and under services/.
	// Default: ConsumerDockerfile (the Go consumer alone).
	ConsumerDockerfile string
	// ConsumerProcessorCommand is the MultiLang record processor the consumer runs. Default: "" (the image's own
	// choice: JSON lines, or the properties file python.Dockerfile starts it with).
	ConsumerProcessorCommand string
	// ConsumerSink is SinkS3 (the records land in the data lake) or SinkLog (JSON lines in the consumer's log).
	// Default: SinkS3. Without effect (no lake) when the consumer runs a MultiLang processor.
	ConsumerSink string
	// LakeFormat is "parquet" or "ndjson". Default: "parquet".
	LakeFormat string
	// LakeIntelligentTieringDays moves objects to Intelligent-Tiering after this many days; -1 never. Default:
	// datalake.DefaultIntelligentTieringDays (30).
	LakeIntelligentTieringDays int
	// LakeExpirationDays deletes objects after this many days. Default: 0 (never).
	LakeExpirationDays int
}

// LakeEnabled tells whether the stack builds the data lake and the consumer writes to it: ConsumerSink is SinkS3
// and the consumer runs the Go consumer's own processor.
func (c Config) LakeEnabled() bool {
	return c.ConsumerSink == SinkS3 && c.ConsumerProcessorCommand == "" && c.ConsumerDockerfile == ConsumerDockerfile
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.ShardCount = cmp.Or(c.ShardCount, stream.DefaultShardCount)
	c.RetentionHours = cmp.Or(c.RetentionHours, stream.DefaultRetentionHours)
	c.MinShards = cmp.Or(c.MinShards, autoscaler.DefaultMinShards)
	c.MaxShards = cmp.Or(c.MaxShards, autoscaler.DefaultMaxShards)
	c.ProducerCPU = cmp.Or(c.ProducerCPU, fargateservice.DefaultCPU)
	c.ProducerMemoryMiB = cmp.Or(c.ProducerMemoryMiB, fargateservice.DefaultMemoryMiB)
	c.ProducerMinTasks = cmp.Or(c.ProducerMinTasks, fargateservice.DefaultMinTasks)
	c.ProducerMaxTasks = cmp.Or(c.ProducerMaxTasks, producerservice.DefaultMaxTasks)
	c.ConsumerCPU = cmp.Or(c.ConsumerCPU, DefaultConsumerCPU)
	c.ConsumerMemoryMiB = cmp.Or(c.ConsumerMemoryMiB, DefaultConsumerMemoryMiB)
	c.ConsumerMinTasks = cmp.Or(c.ConsumerMinTasks, DefaultConsumerMinTasks)
	c.ConsumerMaxTasks = cmp.Or(c.ConsumerMaxTasks, DefaultConsumerMaxTasks)
	c.ProducerScaleOutCooldownSeconds = cmp.Or(c.ProducerScaleOutCooldownSeconds, int(producerservice.DefaultScaleOutCooldown.Seconds()))
	c.ProducerScaleInCooldownSeconds = cmp.Or(c.ProducerScaleInCooldownSeconds, int(producerservice.DefaultScaleInCooldown.Seconds()))
	c.ConsumerScaleOutCooldownSeconds = cmp.Or(c.ConsumerScaleOutCooldownSeconds, int(consumerservice.DefaultScaleOutCooldown.Seconds()))
	c.ConsumerScaleInCooldownSeconds = cmp.Or(c.ConsumerScaleInCooldownSeconds, int(consumerservice.DefaultScaleInCooldown.Seconds()))
	c.NatGateways = cmp.Or(c.NatGateways, network.DefaultNatGateways)
	c.LogRetentionDays = cmp.Or(c.LogRetentionDays, DefaultLogRetentionDays)
	c.ConsumerReadMode = cmp.Or(c.ConsumerReadMode, consumerservice.ReadModeFanOut)
	c.ConsumerDockerfile = cmp.Or(c.ConsumerDockerfile, ConsumerDockerfile)
	c.ConsumerSink = cmp.Or(c.ConsumerSink, SinkS3)
	c.LakeFormat = cmp.Or(c.LakeFormat, string(s3sink.FormatParquet))
	c.LakeIntelligentTieringDays = cmp.Or(c.LakeIntelligentTieringDays, datalake.DefaultIntelligentTieringDays)
	c.CapacityMode = cmp.Or(c.CapacityMode, stream.Provisioned)
	return c
}

// validate reports the first setting outside its range, naming the context key. The shard settings are checked
// only for a provisioned stream, the only one that uses them.
func (c Config) validate() error {
	provisioned := c.CapacityMode == stream.Provisioned
	switch {
	case !provisioned && c.CapacityMode != stream.OnDemand:
		return fmt.Errorf("%s=%q: want %q or %q", ContextCapacityMode, c.CapacityMode, stream.Provisioned, stream.OnDemand)
	case provisioned && (c.ShardCount < c.MinShards || c.ShardCount > c.MaxShards):
		return fmt.Errorf("%s=%d: want between %s=%d and %s=%d", ContextShardCount, c.ShardCount, ContextMinShards, c.MinShards, ContextMaxShards, c.MaxShards)
	case provisioned && c.MinShards < 1:
		return fmt.Errorf("%s=%d: want at least 1", ContextMinShards, c.MinShards)
	case c.ConsumerReadMode != consumerservice.ReadModeFanOut && c.ConsumerReadMode != consumerservice.ReadModePolling:
		return fmt.Errorf("%s=%q: want %q or %q", ContextConsumerReadMode, c.ConsumerReadMode, consumerservice.ReadModeFanOut, consumerservice.ReadModePolling)
	case path.IsAbs(c.ConsumerDockerfile) || !strings.HasPrefix(path.Clean(c.ConsumerDockerfile), "services/"):
		return fmt.Errorf("%s=%q: want a Dockerfile under services/ (the image's build context), relative to the module root, such as %s",
			ContextConsumerDockerfile, c.ConsumerDockerfile, ConsumerPythonDockerfile)
	case c.ConsumerSink != SinkS3 && c.ConsumerSink != SinkLog:
		return fmt.Errorf("%s=%q: want %q or %q", ContextConsumerSink, c.ConsumerSink, SinkS3, SinkLog)
	case c.LakeFormat != string(s3sink.FormatParquet) && c.LakeFormat != string(s3sink.FormatNDJSON):
		return fmt.Errorf("%s=%q: want %q or %q", ContextLakeFormat, c.LakeFormat, s3sink.FormatParquet, s3sink.FormatNDJSON)
	case c.LakeIntelligentTieringDays < -1 || c.LakeExpirationDays < 0 ||
		(c.LakeExpirationDays > 0 && c.LakeExpirationDays <= c.LakeIntelligentTieringDays):
		return fmt.Errorf("%s=%d, %s=%d: want tiering after 1 or more days (-1: never) and expiry after 0 (never) or more days than the tiering",
			ContextLakeIntelligentTieringDays, c.LakeIntelligentTieringDays, ContextLakeExpirationDays, c.LakeExpirationDays)
	}
	for key, v := range map[string]int{
		ContextProducerScaleOutCooldown: c.ProducerScaleOutCooldownSeconds, ContextProducerScaleInCooldown: c.ProducerScaleInCooldownSeconds,
		ContextConsumerScaleOutCooldown: c.ConsumerScaleOutCooldownSeconds, ContextConsumerScaleInCooldown: c.ConsumerScaleInCooldownSeconds,
	} {
		if v < 1 || v > 3600 {
			return fmt.Errorf("%s=%d: want 1 to 3600 seconds", key, v)
		}
	}
	if _, ok := retentionDays[c.LogRetentionDays]; !ok {
		return fmt.Errorf("%s=%d: want one of CloudWatch Logs' retention periods (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, ...)", ContextLogRetentionDays, c.LogRetentionDays)
	}
	return nil
}

// retentionDays maps CloudWatch Logs' retention periods to the CDK's enum.
var retentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS,
	731: awslogs.RetentionDays_TWO_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 3653: awslogs.RetentionDays_TEN_YEARS,
}

// ConfigFromContext reads the Config from the construct tree's context (cdk.json, cdk.context.json, -c). Values
// may be JSON numbers and booleans (cdk.json) or strings (-c on the command line). A value of the wrong type is an
// error that names its key.
func ConfigFromContext(node constructs.Node) (Config, error) {
	var c Config
	ints := map[string]*int{
		ContextShardCount: &c.ShardCount, ContextRetentionHours: &c.RetentionHours,
		ContextMinShards: &c.MinShards, ContextMaxShards: &c.MaxShards,
		ContextProducerCPU: &c.ProducerCPU, ContextProducerMemoryMiB: &c.ProducerMemoryMiB,
		ContextProducerMinTasks: &c.ProducerMinTasks, ContextProducerMaxTasks: &c.ProducerMaxTasks,
		ContextConsumerCPU: &c.ConsumerCPU, ContextConsumerMemoryMiB: &c.ConsumerMemoryMiB,
		ContextConsumerMinTasks: &c.ConsumerMinTasks, ContextConsumerMaxTasks: &c.ConsumerMaxTasks,
		ContextNatGateways: &c.NatGateways, ContextLogRetentionDays: &c.LogRetentionDays,
		ContextProducerScaleOutCooldown: &c.ProducerScaleOutCooldownSeconds, ContextProducerScaleInCooldown: &c.ProducerScaleInCooldownSeconds,
		ContextConsumerScaleOutCooldown: &c.ConsumerScaleOutCooldownSeconds, ContextConsumerScaleInCooldown: &c.ConsumerScaleInCooldownSeconds,
		ContextLakeIntelligentTieringDays: &c.LakeIntelligentTieringDays, ContextLakeExpirationDays: &c.LakeExpirationDays,
	}
	for key, dst := range ints {
		v := node.TryGetContext(&key)
		if v == nil {
			continue
		}
		n, err := contextInt(v)
		if err != nil {
			return c, fmt.Errorf("context %s=%v: %w", key, v, err)
		}
		*dst = n
	}
	bools := map[string]*bool{ContextInterfaceEndpoints: &c.InterfaceEndpoints, ContextRetainData: &c.RetainData,
		ContextAutoscalerDryRun: &c.AutoscalerDryRun}
	for key, dst := range bools {
		v := node.TryGetContext(&key)
		if v == nil {
			continue
		}
		b, err := contextBool(v)
		if err != nil {
			return c, fmt.Errorf("context %s=%v: %w", key, v, err)
		}
		*dst = b
	}
	strs := map[string]*string{ContextCertificateArn: &c.CertificateArn, ContextConsumerReadMode: &c.ConsumerReadMode,
		ContextConsumerDockerfile: &c.ConsumerDockerfile, ContextConsumerProcessorCommand: &c.ConsumerProcessorCommand,
		ContextConsumerSink: &c.ConsumerSink, ContextLakeFormat: &c.LakeFormat, ContextCapacityMode: (*string)(&c.CapacityMode)}
	for key, dst := range strs {
		v := node.TryGetContext(&key)
		if v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return c, fmt.Errorf("context %s=%v: want a string", key, v)
		}
		*dst = s
	}
	return c, nil
}

func contextInt(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("want a whole number")
		}
		return int(x), nil
	case string:
		n, err := strconv.Atoi(x)
		if err != nil {
			return 0, fmt.Errorf("want a whole number")
		}
		return n, nil
	default:
		return 0, fmt.Errorf("want a whole number, got %T", v)
	}
}

func contextBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("want true or false")
		}
		return b, nil
	default:
		return false, fmt.Errorf("want true or false, got %T", v)
	}
}
