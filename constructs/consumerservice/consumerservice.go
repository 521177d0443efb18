// Package consumerservice defines the consumer side: the lease table (the Java KCL 2.x schema, on-demand, with
// point-in-time recovery) and the consumer service on Fargate (ARM64, private subnets, read-only root file system,
// non-root) reading the stream through its registered enhanced fan-out consumer, scaled on CPU, with a deployment
// circuit breaker that rolls back. The container's environment is built from the consumer's own settings constants.
package consumerservice

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/kcl"
)

// Defaults of Props and the fixed shape of the service.
const (
	DefaultCPU              = 512
	DefaultMemoryMiB        = 1024
	DefaultMinTasks         = 1
	DefaultMaxTasks         = 10
	DefaultTargetCPUPercent = 65
	// ContainerName names the consumer container in the task definition.
	ContainerName = "consumer"
	// ContainerUser is the distroless "nonroot" user the image runs as (UID:GID).
	ContainerUser = "65532:65532"
	// ScaleOutCooldown and ScaleInCooldown space the target-tracking steps; scaling in moves leases, so slowly.
	ScaleOutCooldown = 60 * time.Second
	ScaleInCooldown  = 300 * time.Second
	// ReadModeFanOut and ReadModePolling are the values of the consumer's read mode variable.
	ReadModeFanOut  = string(kcl.ReadModeFanOut)
	ReadModePolling = string(kcl.ReadModePolling)
	// ShutdownTimeout bounds the consumer's graceful shutdown (finish the batch, checkpoint, release leases).
	ShutdownTimeout = settings.DefaultShutdownTimeout
	// CheckpointRecords and CheckpointInterval: a checkpoint every 1000 records or 10 s, whichever comes first,
	// bounds what a failover re-reads.
	CheckpointRecords  = settings.DefaultCheckpointRecords
	CheckpointInterval = settings.DefaultCheckpointInterval
	stopTimeoutMargin  = 5 * time.Second
)

// Dimension names and the service value the consumer puts on its EMF metrics (from services/consumer/settings).
const (
	DimensionService     = settings.MetricsDimensionService
	DimensionApplication = settings.MetricsDimensionApplication
	ServiceName          = settings.MetricsServiceName
)

// StopTimeout is the container's ECS stop timeout: the consumer's graceful shutdown (checkpoint, release leases)
// plus a margin before SIGKILL.
const StopTimeout = ShutdownTimeout + stopTimeoutMargin

// StreamActions are the Kinesis calls the worker makes on the stream.
var StreamActions = []string{
	"kinesis:DescribeStreamSummary",
	"kinesis:ListShards",
	"kinesis:GetShardIterator",
	"kinesis:GetRecords",
}

// ConsumerActions are the Kinesis calls the worker makes on the registered fan-out consumer.
var ConsumerActions = []string{
	"kinesis:DescribeStreamConsumer",
	"kinesis:SubscribeToShard",
}

// LeaseTableActions are the DynamoDB calls the lease coordinator makes (services/kcl's leaseTableAPI, less
// CreateTable: the stack owns the table), granted on the lease table only.
var LeaseTableActions = []string{
	"dynamodb:DescribeTable",
	"dynamodb:GetItem",
	"dynamodb:PutItem",
	"dynamodb:UpdateItem",
	"dynamodb:Scan",
}

// Props configures a ConsumerService. Cluster, Stream, StreamConsumer and Image are required.
type Props struct {
	// Cluster is the ECS cluster (and through it the VPC). Required.
	Cluster awsecs.ICluster
	// Stream is the stream to read. Required.
	Stream awskinesis.IStream
	// StreamConsumer is the registered enhanced fan-out consumer; its ARN goes to the service. Required.
	StreamConsumer awskinesis.IStreamConsumer
	// Image is the consumer's container image (built from services/consumer/Dockerfile by the stack). Required.
	Image awsecs.ContainerImage
	// ReadMode is ReadModeFanOut (SubscribeToShard through StreamConsumer, 2 MiB/s per shard per consumer) or
	// ReadModePolling (GetRecords, shared 2 MiB/s per shard). Default: ReadModeFanOut.
	ReadMode string
	// CPU and MemoryMiB size the task. Default: DefaultCPU and DefaultMemoryMiB.
	CPU, MemoryMiB int
	// MinTasks and MaxTasks bound the CPU target tracking. Default: DefaultMinTasks and DefaultMaxTasks.
	MinTasks, MaxTasks int
	// TargetCPUPercent is the average CPU the service is scaled to. Default: DefaultTargetCPUPercent.
	TargetCPUPercent int
	// LogRetention is how long the container logs are kept. Default: one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy applies to the log group. Default: awscdk.RemovalPolicy_DESTROY.
	LogRemovalPolicy awscdk.RemovalPolicy
	// LeaseTableRemovalPolicy applies to the lease table. Default: awscdk.RemovalPolicy_DESTROY: the leases and
	// checkpoints only mean something for the stream they were taken on, which the stack deletes too by default; a
	// new table makes the consumers start again at TRIM_HORIZON (at-least-once). Use RETAIN to keep the checkpoints
	// of a retained stream.
	LeaseTableRemovalPolicy awscdk.RemovalPolicy
}

// ConsumerService is the lease table and the Fargate service.
type ConsumerService struct {
	constructs.Construct
	LeaseTable     awsdynamodb.Table
	TaskDefinition awsecs.FargateTaskDefinition
	Container      awsecs.ContainerDefinition
	Service        awsecs.FargateService
	LogGroup       awslogs.LogGroup
	Scaling        awsecs.ScalableTaskCount
	// MetricDimensions are the dimensions the consumer puts on its EMF metrics (for the dashboard).
	MetricDimensions map[string]*string
}

// Environment is the consumer container's environment: every variable the consumer reads in AWS. Left out: the
// local-only endpoints, WORKER_ID (the ECS task id is the default), INITIAL_TIMESTAMP (only with AT_TIMESTAMP) and
// ECS_CONTAINER_METADATA_URI_V4 (set by ECS itself).
func Environment(streamName, applicationName, consumerARN *string, readMode string) map[string]*string {
	return map[string]*string{
		settings.EnvStreamName:         streamName,
		settings.EnvApplicationName:    applicationName,
		settings.EnvReadMode:           jsii.String(readMode),
		settings.EnvConsumerARN:        consumerARN,
		settings.EnvInitialPosition:    jsii.String(kcl.CheckpointTrimHorizon),
		settings.EnvCreateLeaseTable:   jsii.String("false"),
		settings.EnvCheckpointRecords:  jsii.String(strconv.Itoa(CheckpointRecords)),
		settings.EnvCheckpointInterval: jsii.String(CheckpointInterval.String()),
		settings.EnvFailoverTime:       jsii.String(kcl.DefaultFailoverTime.String()),
		settings.EnvShutdownTimeout:    jsii.String(ShutdownTimeout.String()),
	}
}

// New creates the consumer service and its lease table. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *ConsumerService {
	if props == nil || props.Cluster == nil || props.Stream == nil || props.StreamConsumer == nil || props.Image == nil {
		panic("consumerservice: Cluster, Stream, StreamConsumer and Image are required")
	}
	p := *props
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.CPU, DefaultCPU)
	def(&p.MemoryMiB, DefaultMemoryMiB)
	def(&p.MinTasks, DefaultMinTasks)
	def(&p.MaxTasks, DefaultMaxTasks)
	def(&p.TargetCPUPercent, DefaultTargetCPUPercent)
	if p.ReadMode == "" {
		p.ReadMode = ReadModeFanOut
	}
	if p.ReadMode != ReadModeFanOut && p.ReadMode != ReadModePolling {
		panic(fmt.Sprintf("consumerservice: ReadMode is %q, want %q or %q", p.ReadMode, ReadModeFanOut, ReadModePolling))
	}
	if p.MinTasks < 1 || p.MaxTasks < p.MinTasks {
		panic(fmt.Sprintf("consumerservice: MinTasks=%d MaxTasks=%d, want 1 <= MinTasks <= MaxTasks", p.MinTasks, p.MaxTasks))
	}
	if p.TargetCPUPercent < 10 || p.TargetCPUPercent > 90 {
		panic(fmt.Sprintf("consumerservice: TargetCPUPercent is %d, want 10 to 90", p.TargetCPUPercent))
	}
	if p.LogRetention == "" {
		p.LogRetention = awslogs.RetentionDays_ONE_MONTH
	}
	if p.LogRemovalPolicy == "" {
		p.LogRemovalPolicy = awscdk.RemovalPolicy_DESTROY
	}
	if p.LeaseTableRemovalPolicy == "" {
		p.LeaseTableRemovalPolicy = awscdk.RemovalPolicy_DESTROY
	}

	this := constructs.NewConstruct(scope, id)
	c := &ConsumerService{Construct: this}
	c.LeaseTable = awsdynamodb.NewTable(this, jsii.String("LeaseTable"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(kcl.LeaseTableHashKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: p.LeaseTableRemovalPolicy,
	})
	c.LogGroup = awslogs.NewLogGroup(this, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     p.LogRetention,
		RemovalPolicy: p.LogRemovalPolicy,
	})
	c.TaskDefinition = awsecs.NewFargateTaskDefinition(this, jsii.String("Task"), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(p.CPU),
		MemoryLimitMiB: jsii.Number(p.MemoryMiB),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	appName := c.LeaseTable.TableName()
	env := Environment(p.Stream.StreamName(), appName, p.StreamConsumer.StreamConsumerArn(), p.ReadMode)
	c.Container = c.TaskDefinition.AddContainer(jsii.String(ContainerName), &awsecs.ContainerDefinitionOptions{
		Image:                  p.Image,
		Essential:              jsii.Bool(true),
		User:                   jsii.String(ContainerUser),
		ReadonlyRootFilesystem: jsii.Bool(true),
		StopTimeout:            awscdk.Duration_Seconds(jsii.Number(StopTimeout.Seconds())),
		Environment:            &env,
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			LogGroup:     c.LogGroup,
			StreamPrefix: jsii.String(ContainerName),
			Mode:         awsecs.AwsLogDriverMode_NON_BLOCKING,
		}),
	})
	c.MetricDimensions = MetricDimensions(appName)

	role := c.TaskDefinition.TaskRole()
	// Exactly the worker's calls (services/kcl and services/consumer): shard discovery and polling reads on the
	// stream (polling also finds the end of a closed shard in fan-out mode), SubscribeToShard and
	// DescribeStreamConsumer on the registered consumer. The L2 GrantRead methods would add DescribeStream and
	// ListStreams, which the worker never calls.
	p.Stream.Grant(role, *jsii.Strings(StreamActions...)...)
	if p.ReadMode == ReadModeFanOut {
		p.StreamConsumer.Grant(role, *jsii.Strings(ConsumerActions...)...)
	}
	c.LeaseTable.Grant(role, *jsii.Strings(LeaseTableActions...)...)

	c.Service = awsecs.NewFargateService(this, jsii.String("Service"), &awsecs.FargateServiceProps{
		Cluster:           p.Cluster,
		TaskDefinition:    c.TaskDefinition,
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
		AssignPublicIp:    jsii.Bool(false),
		VpcSubnets:        &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
	})
	c.Scaling = c.Service.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{
		MinCapacity: jsii.Number(p.MinTasks),
		MaxCapacity: jsii.Number(p.MaxTasks),
	})
	c.Scaling.ScaleOnCpuUtilization(jsii.String("Cpu"), &awsecs.CpuUtilizationScalingProps{
		TargetUtilizationPercent: jsii.Number(p.TargetCPUPercent),
		ScaleOutCooldown:         awscdk.Duration_Seconds(jsii.Number(ScaleOutCooldown.Seconds())),
		ScaleInCooldown:          awscdk.Duration_Seconds(jsii.Number(ScaleInCooldown.Seconds())),
	})

	cdknag.NagSuppressions_AddResourceSuppressions(c.TaskDefinition, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-ECS2"),
		Reason: jsii.String("The consumer's environment is non-secret wiring (stream, lease table and fan-out consumer names, " +
			"checkpoint cadence, timeouts) that should change only with a new task definition revision."),
	}}, jsii.Bool(false))
	cdknag.NagSuppressions_AddResourceSuppressions(c.TaskDefinition.ObtainExecutionRole(), &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The execution role's ecr:GetAuthorizationToken supports no resource-level permissions (AWS requires " +
			"Resource *); image pulls themselves are scoped to the asset repository."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return c
}

// MetricDimensions are the dimensions of the consumer's EMF metrics for the application (lease table) name.
func MetricDimensions(applicationName *string) map[string]*string {
	return map[string]*string{DimensionService: jsii.String(ServiceName), DimensionApplication: applicationName}
}
