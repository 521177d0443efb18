// Package settings names the consumer service's environment variables and parses them. The names are exported so the
// infrastructure code sets exactly what the service reads.
package settings

import (
	"strings"
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/multilang"
	"github.com/streamproc/streamproc/services/s3sink"
)

// Environment variables the consumer reads. The infrastructure code sets them through these constants.
const (
	// EnvStreamName is the Kinesis stream to read. Required.
	EnvStreamName = "STREAM_NAME"
	// EnvApplicationName names the lease table and the fan-out stream consumer. Required.
	EnvApplicationName = "APPLICATION_NAME"
	// EnvReadMode is "fanout" or "polling". Default: polling.
	EnvReadMode = "READ_MODE"
	// EnvConsumerARN is the registered stream consumer for fan-out. Default (fan-out only): the consumer named
	// APPLICATION_NAME on the stream, registered when missing.
	EnvConsumerARN = "CONSUMER_ARN"
	// EnvInitialPosition is TRIM_HORIZON, LATEST or AT_TIMESTAMP (with EnvInitialTimestamp). Default: TRIM_HORIZON.
	EnvInitialPosition = "INITIAL_POSITION"
	// EnvInitialTimestamp is an RFC 3339 time, for AT_TIMESTAMP.
	EnvInitialTimestamp = "INITIAL_TIMESTAMP"
	// EnvKinesisEndpoint overrides the Kinesis endpoint (local emulator). Default: AWS.
	EnvKinesisEndpoint = "KINESIS_ENDPOINT"
	// EnvDynamoDBEndpoint overrides the DynamoDB endpoint (local emulator). Default: AWS.
	EnvDynamoDBEndpoint = "DYNAMODB_ENDPOINT"
	// EnvWorkerID is this worker's lease owner id. Default: the ECS task id, else the hostname.
	EnvWorkerID = "WORKER_ID"
	// EnvCreateLeaseTable is "true" to create the lease table when missing. Default: true when DYNAMODB_ENDPOINT is
	// set (local runs), false otherwise (the stack owns the table).
	EnvCreateLeaseTable = "CREATE_LEASE_TABLE"
	// EnvCheckpointRecords is how many records may be written between checkpoints. Default: 1000.
	EnvCheckpointRecords = "CHECKPOINT_RECORDS"
	// EnvCheckpointInterval is the longest time between checkpoints (Go duration). Default: 10s.
	EnvCheckpointInterval = "CHECKPOINT_INTERVAL"
	// EnvFailoverTime is the lease failover time (Go duration). Default: 10s, as the Java KCL.
	EnvFailoverTime = "FAILOVER_TIME"
	// EnvLeaseBalancing is what the workers even out: "load" (their leases' throughput) or "count" (their numbers of
	// leases, as the Java KCL 2.x). Default: load.
	EnvLeaseBalancing = "LEASE_BALANCING"
	// EnvRebalanceThreshold is the band around the mean load within which workers count as balanced, in percent
	// (1-100). Default: 10, as the Java KCL 3.x.
	EnvRebalanceThreshold = "REBALANCE_THRESHOLD_PERCENT"
	// EnvHandoffTimeout is how long, on top of the failover time, a worker waits for a lease's old owner to
	// checkpoint and let go before it takes the lease anyway (Go duration). Default: 30s, as the Java KCL 3.x.
	EnvHandoffTimeout = "HANDOFF_TIMEOUT"
	// EnvShutdownTimeout bounds the graceful shutdown (Go duration). Default: 25s, under ECS's 30 s stop timeout.
	// The producer's variable of the same name bounds its shutdown.
	EnvShutdownTimeout = "SHUTDOWN_TIMEOUT"
	// EnvLogLevel is debug, info, warn or error. Default: info.
	EnvLogLevel = envconfig.EnvLogLevel
	// EnvMetricsNamespace is the CloudWatch namespace of the EMF metrics. Default: telemetry.DefaultNamespace.
	EnvMetricsNamespace = envconfig.EnvMetricsNamespace
	// EnvMetricsInterval is how often metrics are written (Go duration). Default: 1m.
	EnvMetricsInterval = envconfig.EnvMetricsInterval
	// EnvRegion is the AWS region. Default: the SDK's usual sources (the task's region on ECS), or us-east-1 with
	// an endpoint override.
	EnvRegion = envconfig.EnvRegion
	// EnvECSMetadataURI is set by ECS; the task id is read from it.
	EnvECSMetadataURI = "ECS_CONTAINER_METADATA_URI_V4"

	// EnvProcessor chooses what is done with the records: ProcessorLog (each record a JSON line on stdout) or
	// ProcessorMultiLang (a MultiLang record processor, EnvMultiLangCommand) or ProcessorS3 (objects in S3,
	// EnvS3Bucket). Default: ProcessorLog, or ProcessorMultiLang with a properties file.
	EnvProcessor = "PROCESSOR"
	// EnvMultiLangCommand is the MultiLang record processor's command line (a properties file's executableName),
	// split at spaces. Required with ProcessorMultiLang.
	EnvMultiLangCommand = "MULTILANG_COMMAND"
	// EnvMultiLangTimeout is how long the consumer waits for each message of a record processor before it kills
	// it as hung (Go duration; a properties file's timeoutInSeconds). Default: multilang.DefaultTimeout.
	EnvMultiLangTimeout = "MULTILANG_TIMEOUT"
	// EnvMultiLangProtocolVersion is 2 (leaseLost, shardEnded: the KCL 2.x and 3.x daemons) or 1 (shutdown with a
	// reason: the KCL 1.x daemon). Default: 2.
	EnvMultiLangProtocolVersion = "MULTILANG_PROTOCOL_VERSION"
	// EnvMaxRecords caps the records of one GetRecords call when polling (a properties file's maxRecords).
	// Default: 10000.
	EnvMaxRecords = "MAX_RECORDS"
	// EnvPollIdleInterval is the pause after a GetRecords call that found nothing new (Go duration; a properties
	// file's idleTimeBetweenReadsInMillis). Default: 1s.
	EnvPollIdleInterval = "POLL_IDLE_INTERVAL"
	// EnvProcessEmptyBatches also gives the processor the reads that found no records (a properties file's
	// callProcessRecordsEvenForEmptyRecordList). Default: false, but always true with ProcessorLog, whose
	// checkpoints every CHECKPOINT_INTERVAL need them.
	EnvProcessEmptyBatches = "PROCESS_EMPTY_BATCHES"
	// EnvShardSyncInterval is how often the shards are listed to find new ones (Go duration; a properties file's
	// shardSyncIntervalMillis). Default: 1m.
	EnvShardSyncInterval = "SHARD_SYNC_INTERVAL"
)

// Processors EnvProcessor chooses from.
const (
	// ProcessorLog writes each record as one JSON line to stdout.
	ProcessorLog = "log"
	// ProcessorMultiLang runs a MultiLang record processor (any language) as a child process per shard.
	ProcessorMultiLang = "multilang"
)

// Defaults of the settings that have one.
const (
	// DefaultCheckpointRecords is EnvCheckpointRecords' default: what a failover re-reads at most, in records.
	DefaultCheckpointRecords = 1000
	// DefaultCheckpointInterval is EnvCheckpointInterval's default.
	DefaultCheckpointInterval = 10 * time.Second
	// DefaultShutdownTimeout is EnvShutdownTimeout's default, under ECS's default 30 s stop timeout.
	DefaultShutdownTimeout = 25 * time.Second
)

// Dimensions the consumer puts on every EMF metric it writes, so dashboards and alarms select its metrics.
const (
	// MetricsDimensionService holds MetricsServiceName.
	MetricsDimensionService = "Service"
	// MetricsDimensionApplication holds the application name (EnvApplicationName).
	MetricsDimensionApplication = "Application"
	// MetricsServiceName is the value of MetricsDimensionService.
	MetricsServiceName = "consumer"
)

// Settings is the validated configuration of a consumer worker.
type Settings struct {
	// AWS holds the region (EnvRegion) and, with an endpoint override and no AWS credentials in the environment,
	// the use of dummy credentials that emulators accept.
	envconfig.AWS
	// Telemetry holds the log level (EnvLogLevel) and the EMF writer's namespace and interval (EnvMetricsNamespace,
	// EnvMetricsInterval).
	envconfig.Telemetry
	// Stream is the Kinesis stream to read (EnvStreamName); Application names the lease table and the fan-out
	// consumer (EnvApplicationName). Both are required.
	Stream, Application string
	// ReadMode is fan-out or polling (EnvReadMode). Default: kcl.ReadModePolling.
	ReadMode kcl.ReadMode
	// ConsumerARN is the registered stream consumer for fan-out (EnvConsumerARN). Default: empty, the consumer named
	// Application.
	ConsumerARN string
	// InitialPosition is where a shard without a checkpoint is read from (EnvInitialPosition). Default:
	// kcl.CheckpointTrimHorizon.
	InitialPosition string
	// InitialTimestamp is the start time with kcl.CheckpointAtTimestamp (EnvInitialTimestamp); zero otherwise.
	InitialTimestamp time.Time
	// KinesisEndpoint overrides the Kinesis endpoint (EnvKinesisEndpoint). Default: empty, AWS.
	KinesisEndpoint string
	// DynamoDBEndpoint overrides the DynamoDB endpoint (EnvDynamoDBEndpoint). Default: empty, AWS.
	DynamoDBEndpoint string
	// WorkerID is this worker's lease owner id (EnvWorkerID). Default: empty, resolved by main.
	WorkerID string
	// CreateLeaseTable creates the lease table when missing (EnvCreateLeaseTable). Default: true when
	// DynamoDBEndpoint is set.
	CreateLeaseTable bool
	// CheckpointRecords is how many records may be written between checkpoints (EnvCheckpointRecords). Default:
	// DefaultCheckpointRecords.
	CheckpointRecords int
	// CheckpointInterval is the longest time between checkpoints (EnvCheckpointInterval). Default:
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// FailoverTime is the lease failover time (EnvFailoverTime). Default: kcl.DefaultFailoverTime.
	FailoverTime time.Duration
	// ShutdownTimeout bounds the graceful shutdown (EnvShutdownTimeout). Default: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Balancing is what the workers even out (EnvLeaseBalancing). Default: kcl.BalancingLoad.
	Balancing kcl.Balancing
	// RebalanceThresholdPercent is the band around the mean load (EnvRebalanceThreshold). Default:
	// kcl.DefaultRebalanceThresholdPercent.
	RebalanceThresholdPercent int
	// HandoffTimeout bounds a graceful hand-off (EnvHandoffTimeout). Default: kcl.DefaultHandoffTimeout.
	HandoffTimeout time.Duration
	// Processor is what is done with the records (EnvProcessor): ProcessorLog, ProcessorMultiLang or ProcessorS3.
	Processor string
	// S3 configures the S3 sink (EnvS3Bucket, EnvS3Prefix, EnvS3Format, EnvS3MaxObjectBytes, EnvS3MaxObjectAge,
	// EnvS3SpillDir); used with ProcessorS3.
	S3 s3sink.Config
	// S3Endpoint overrides the S3 endpoint (EnvS3Endpoint). Default: empty, AWS.
	S3Endpoint string
	// MultiLang configures the MultiLang record processors (EnvMultiLangCommand, EnvMultiLangTimeout,
	// EnvMultiLangProtocolVersion); used with ProcessorMultiLang.
	MultiLang multilang.Config
	// MaxRecords caps the records of one GetRecords call (EnvMaxRecords). Default: 0, kcl's default.
	MaxRecords int
	// PollIdleInterval is the pause after an idle GetRecords call (EnvPollIdleInterval). Default: 0, kcl's default.
	PollIdleInterval time.Duration
	// ProcessEmptyBatches gives the processor reads that found no records (EnvProcessEmptyBatches).
	ProcessEmptyBatches bool
	// ShardSyncInterval is how often the shards are listed (EnvShardSyncInterval). Default: 0, kcl's default.
	ShardSyncInterval time.Duration
	// Warnings are settings that were accepted but deserve a log line.
	Warnings []string
}

// loadProcessor reads the processor's settings and the reading settings MultiLang users set.
func loadProcessor(p *envconfig.Parser, s *Settings) {
	s.Processor = p.Choice(EnvProcessor, ProcessorLog, ProcessorLog, ProcessorMultiLang, ProcessorS3)
	s.MaxRecords = p.Int(EnvMaxRecords, 0, 1, 10000)
	s.PollIdleInterval = p.Duration(EnvPollIdleInterval, 0)
	s.ShardSyncInterval = p.Duration(EnvShardSyncInterval, 0)
	// The log processor's checkpoint interval and the sink's flush by age need the idle reads too.
	s.ProcessEmptyBatches = p.Bool(EnvProcessEmptyBatches, false) || s.Processor == ProcessorLog || s.Processor == ProcessorS3
	command := p.String(EnvMultiLangCommand)
	s.MultiLang = multilang.Config{
		Command:         strings.Fields(command),
		Timeout:         p.Duration(EnvMultiLangTimeout, multilang.DefaultTimeout),
		ProtocolVersion: p.Int(EnvMultiLangProtocolVersion, multilang.DefaultProtocolVersion, 1, 2),
	}
	if s.Processor == ProcessorMultiLang && command == "" {
		p.Invalid(EnvMultiLangCommand, "required with "+EnvProcessor+"="+ProcessorMultiLang+": the record processor's command line")
	}
}

// Error is a bad configuration value; it names the variable.
type Error = envconfig.Error

// Load reads the settings with lookup (os.LookupEnv in main). Every error is an *Error naming the variable at
// fault; all of them are reported at once. An empty WorkerID is resolved by main (it may need a request to the
// ECS metadata endpoint).
func Load(lookup func(string) (string, bool)) (Settings, error) {
	p := envconfig.NewParser(lookup)
	s := Settings{
		Stream:             p.Required(EnvStreamName, "the Kinesis stream to read"),
		Application:        p.Required(EnvApplicationName, "names the lease table and the stream consumer"),
		ReadMode:           kcl.ReadMode(p.Choice(EnvReadMode, string(kcl.ReadModePolling), string(kcl.ReadModeFanOut), string(kcl.ReadModePolling))),
		ConsumerARN:        p.String(EnvConsumerARN),
		InitialPosition:    p.Choice(EnvInitialPosition, kcl.CheckpointTrimHorizon, kcl.CheckpointTrimHorizon, kcl.CheckpointLatest, kcl.CheckpointAtTimestamp),
		KinesisEndpoint:    p.URL(EnvKinesisEndpoint),
		DynamoDBEndpoint:   p.URL(EnvDynamoDBEndpoint),
		WorkerID:           p.String(EnvWorkerID),
		CheckpointRecords:  p.Int(EnvCheckpointRecords, DefaultCheckpointRecords, 1, 1<<31-1),
		CheckpointInterval: p.Duration(EnvCheckpointInterval, DefaultCheckpointInterval),
		FailoverTime:       p.Duration(EnvFailoverTime, kcl.DefaultFailoverTime),
		ShutdownTimeout:    p.Duration(EnvShutdownTimeout, DefaultShutdownTimeout),
		Balancing: kcl.Balancing(p.Choice(EnvLeaseBalancing, string(kcl.BalancingLoad), string(kcl.BalancingLoad),
			string(kcl.BalancingCount))),
		RebalanceThresholdPercent: p.Int(EnvRebalanceThreshold, kcl.DefaultRebalanceThresholdPercent, 1, 100),
		HandoffTimeout:            p.Duration(EnvHandoffTimeout, kcl.DefaultHandoffTimeout),
		Telemetry:                 p.Telemetry(),
	}
	if strings.ContainsAny(s.Application, " /") || len(s.Application) > 128 {
		p.Invalid(EnvApplicationName, "want a DynamoDB table name: 3-128 of a-z A-Z 0-9 _ - .")
	}
	if s.ConsumerARN != "" && !strings.HasPrefix(s.ConsumerARN, "arn:") {
		p.Invalid(EnvConsumerARN, "want a stream consumer ARN")
	}
	if s.InitialPosition == kcl.CheckpointAtTimestamp {
		s.InitialTimestamp = p.Time(EnvInitialTimestamp, "with "+EnvInitialPosition+"="+kcl.CheckpointAtTimestamp)
	}
	s.CreateLeaseTable = p.Bool(EnvCreateLeaseTable, s.DynamoDBEndpoint != "")
	loadProcessor(p, &s)
	loadS3(p, &s)
	s.AWS = p.AWS(s.KinesisEndpoint != "" || s.DynamoDBEndpoint != "" || s.S3Endpoint != "")
	s.Warnings = p.Warnings()
	return s, p.Err()
}
