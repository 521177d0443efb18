// Package consumerservice defines the consumer side: the lease table (the Java KCL 2.x schema, on-demand, with
// point-in-time recovery) and the consumer service on Fargate (ARM64, private subnets, read-only root file system,
// non-root) reading the stream through its registered enhanced fan-out consumer, scaled on CPU, with a deployment
// circuit breaker that rolls back. The container's environment is built from the consumer's own settings constants.
package consumerservice

import (
	"cmp"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/s3sink"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Defaults of Props and the fixed shape of the service (the shape it shares with the producer, and the other
// defaults of Sizing, are in package fargateservice).
const (
	// DefaultMaxTasks is the default of Sizing.MaxTasks.
	DefaultMaxTasks = 10
	// DefaultScaleOutCooldown and DefaultScaleInCooldown are the defaults of Sizing's cooldowns: the blog's
	// template (aws-samples/amazon-kinesis-data-processor-aws-fargate, cloudformation/deployment.yaml) uses 10 s
	// both ways for the consumer. A task scaled in checkpoints and releases its leases (ShutdownTimeout), and the
	// others take them at their next lease sync; raise ScaleInCooldown if the task count flaps.
	DefaultScaleOutCooldown = 10 * time.Second
	DefaultScaleInCooldown  = 10 * time.Second
	// ContainerName names the consumer container in the task definition.
	ContainerName = "consumer"
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
	// SpillPath is where the S3 sink encodes objects before uploading them: a task volume (the root file system is
	// read-only), created owned by the container's user in the image (services/consumer/Dockerfile).
	SpillPath       = "/spill"
	spillVolumeName = "spill"
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

// StreamActions are the Kinesis calls the worker makes on the stream (services/kcl's KinesisAPI, less
// SubscribeToShard, which acts on the registered consumer). The consumer's DescribeStreamSummary,
// DescribeStreamConsumer and RegisterStreamConsumer (services/consumer's ensureStreamConsumer) run only without
// CONSUMER_ARN, which the task always sets.
var StreamActions = []string{
	"kinesis:ListShards",
	"kinesis:GetShardIterator",
	"kinesis:GetRecords",
}

// ConsumerActions are the Kinesis calls the worker makes on the registered fan-out consumer.
var ConsumerActions = []string{
	"kinesis:SubscribeToShard",
}

// LeaseTableActions are the DynamoDB calls the lease coordinator makes on the lease table (services/kcl's
// DynamoDBAPI, less DescribeTable and CreateTable: only CREATE_LEASE_TABLE=true makes them, and the stack owns the
// table; and less Query, which reads the owner index only: LeaseOwnerIndexActions).
var LeaseTableActions = []string{
	"dynamodb:GetItem",
	"dynamodb:PutItem",
	"dynamodb:UpdateItem",
	"dynamodb:Scan",
	"dynamodb:DeleteItem", // lease clean-up of finished and aged-out shards
}

// LeaseOwnerIndexActions are the calls the lease coordinator makes on the lease table's owner index
// (kcl.LeaseOwnerIndexName): it finds the leases assigned to its worker.
var LeaseOwnerIndexActions = []string{"dynamodb:Query"}

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
	// Sizing sizes and scales the service. Default: fargateservice's defaults, at most DefaultMaxTasks tasks,
	// DefaultScaleOutCooldown and DefaultScaleInCooldown.
	fargateservice.Sizing
	// ProcessorCommand, when set, makes the consumer run this MultiLang record processor command (any language;
	// the image must hold it) instead of the image's own choice. Default: "".
	ProcessorCommand string
	// Sink, when set, makes the consumer land the records in S3 with its S3 sink (PROCESSOR=s3) instead of the
	// image's own processor; it cannot be combined with ProcessorCommand. The stack grants the task role the sink's
	// calls on the prefix. Default: nil.
	Sink *Sink
	// LeaseTableRemovalPolicy applies to the lease table. Default: awscdk.RemovalPolicy_DESTROY: the leases and
	// checkpoints only mean something for the stream they were taken on, which the stack deletes too by default; a
	// new table makes the consumers start again at TRIM_HORIZON (at-least-once). Use RETAIN to keep the checkpoints
	// of a retained stream.
	LeaseTableRemovalPolicy awscdk.RemovalPolicy
}

// Sink is where the consumer's S3 sink writes.
type Sink struct {
	// BucketName is the bucket. Required.
	BucketName *string
	// Prefix is the key prefix, without slashes around it. Required.
	Prefix string
	// Format is the objects' format. Required.
	Format s3sink.Format
}

// SinkEnvironment is the consumer's environment for the S3 sink: the processor, the bucket, prefix and format, and
// the spill directory on the task's volume. Sizes and ages keep the sink's defaults (64 MiB, 1 minute).
func SinkEnvironment(s *Sink) map[string]*string {
	return map[string]*string{
		settings.EnvProcessor:  jsii.String(settings.ProcessorS3),
		settings.EnvS3Bucket:   s.BucketName,
		settings.EnvS3Prefix:   jsii.String(s.Prefix),
		settings.EnvS3Format:   jsii.String(string(s.Format)),
		settings.EnvS3SpillDir: jsii.String(SpillPath),
	}
}

// ConsumerService is the lease table and the Fargate service.
type ConsumerService struct {
	constructs.Construct
	// LeaseTable holds the consumers' shard leases and checkpoints (on-demand, point-in-time recovery); its name is
	// also the consumers' application name.
	LeaseTable awsdynamodb.Table
	// Resources are the log group, task definition, container, Fargate service and its scaling.
	fargateservice.Resources
	// MetricDimensions are the dimensions the consumer puts on its EMF metrics (for the dashboard).
	MetricDimensions map[string]*string
}

// Environment is the consumer container's environment: every variable the consumer reads in AWS. Left out: the
// local-only endpoints, WORKER_ID (the ECS task id is the default), INITIAL_TIMESTAMP (only with AT_TIMESTAMP),
// ECS_CONTAINER_METADATA_URI_V4 and AWS_REGION (set by ECS itself), the MultiLang variables when processorCommand is
// empty (the image chooses), and the reading settings whose defaults apply.
func Environment(streamName, applicationName, consumerARN *string, readMode, processorCommand string) map[string]*string {
	env := map[string]*string{
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
		settings.EnvLogLevel:           jsii.String("info"),
		settings.EnvMetricsNamespace:   jsii.String(telemetry.DefaultNamespace),
		settings.EnvMetricsInterval:    jsii.String(telemetry.DefaultFlushInterval.String()),
	}
	if processorCommand != "" {
		env[settings.EnvProcessor] = jsii.String(settings.ProcessorMultiLang)
		env[settings.EnvMultiLangCommand] = jsii.String(processorCommand)
	}
	return env
}

// New creates the consumer service and its lease table. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *ConsumerService {
	if props == nil || props.Cluster == nil || props.Stream == nil || props.StreamConsumer == nil || props.Image == nil {
		panic("consumerservice: Cluster, Stream, StreamConsumer and Image are required")
	}
	p := *props
	p.MaxTasks = cmp.Or(p.MaxTasks, DefaultMaxTasks)
	p.ScaleOutCooldown = cmp.Or(p.ScaleOutCooldown, DefaultScaleOutCooldown)
	p.ScaleInCooldown = cmp.Or(p.ScaleInCooldown, DefaultScaleInCooldown)
	p.ReadMode = cmp.Or(p.ReadMode, ReadModeFanOut)
	if p.ReadMode != ReadModeFanOut && p.ReadMode != ReadModePolling {
		panic(fmt.Sprintf("consumerservice: ReadMode is %q, want %q or %q", p.ReadMode, ReadModeFanOut, ReadModePolling))
	}
	p.LeaseTableRemovalPolicy = cmp.Or(p.LeaseTableRemovalPolicy, awscdk.RemovalPolicy_DESTROY)
	if p.Sink != nil && (p.Sink.BucketName == nil || p.Sink.Prefix == "" || p.Sink.Format == "" || p.ProcessorCommand != "") {
		panic(fmt.Sprintf("consumerservice: Sink %+v: want a bucket, a prefix and a format, and no ProcessorCommand (%q)", *p.Sink, p.ProcessorCommand))
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
	// The Java KCL 3.x's index of leases by owner: a Java KCL 3.x worker needs it to join, and the workers find the
	// leases assigned to them through it.
	c.LeaseTable.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(kcl.LeaseOwnerIndexName),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(kcl.AttrLeaseOwner), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String(kcl.AttrLeaseKey), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_KEYS_ONLY,
	})
	appName := c.LeaseTable.TableName()
	env := Environment(p.Stream.StreamName(), appName, p.StreamConsumer.StreamConsumerArn(), p.ReadMode, p.ProcessorCommand)
	if p.Sink != nil {
		maps.Copy(env, SinkEnvironment(p.Sink))
	}
	c.Resources = fargateservice.Add(this, &fargateservice.Props{
		Cluster:       p.Cluster,
		Image:         p.Image,
		ContainerName: ContainerName,
		Environment:   env,
		StopTimeout:   StopTimeout,
		Sizing:        p.Sizing,
	})
	c.MetricDimensions = MetricDimensions(appName)
	if p.Sink != nil {
		c.TaskDefinition.AddVolume(&awsecs.Volume{Name: jsii.String(spillVolumeName)})
		c.Container.AddMountPoints(&awsecs.MountPoint{ContainerPath: jsii.String(SpillPath), SourceVolume: jsii.String(spillVolumeName), ReadOnly: jsii.Bool(false)})
	}

	role := c.TaskDefinition.TaskRole()
	// Exactly the worker's calls (services/kcl): shard discovery and polling reads on the stream (polling also finds
	// the end of a closed shard in fan-out mode), SubscribeToShard on the registered consumer. The L2 GrantRead
	// methods would add DescribeStream, DescribeStreamSummary and ListStreams, which the deployed worker never calls.
	p.Stream.Grant(role, *jsii.Strings(StreamActions...)...)
	if p.ReadMode == ReadModeFanOut {
		p.StreamConsumer.Grant(role, *jsii.Strings(ConsumerActions...)...)
	}
	// The table's own Grant would give every action on its indexes too: each resource gets exactly its calls.
	awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{Grantee: role,
		Actions: jsii.Strings(LeaseTableActions...), ResourceArns: &[]*string{c.LeaseTable.TableArn()}})
	awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{Grantee: role, Actions: jsii.Strings(LeaseOwnerIndexActions...),
		ResourceArns: &[]*string{jsii.String(*c.LeaseTable.TableArn() + "/index/" + kcl.LeaseOwnerIndexName)}})

	cdknag.NagSuppressions_AddResourceSuppressions(c.TaskDefinition, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-ECS2"),
		Reason: jsii.String("The consumer's environment is non-secret wiring (stream, lease table and fan-out consumer names, " +
			"checkpoint cadence, timeouts) that should change only with a new task definition revision."),
	}}, jsii.Bool(false))
	return c
}

// MetricDimensions are the dimensions of the consumer's EMF metrics for the application (lease table) name.
func MetricDimensions(applicationName *string) map[string]*string {
	return map[string]*string{DimensionService: jsii.String(ServiceName), DimensionApplication: applicationName}
}
