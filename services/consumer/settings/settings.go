// Package settings names the consumer service's environment variables and parses them. The names are exported so the
// infrastructure code sets exactly what the service reads.
package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
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
	// EnvShutdownTimeout bounds the graceful shutdown (Go duration). Default: 25s, under ECS's 30 s stop timeout.
	EnvShutdownTimeout = "SHUTDOWN_TIMEOUT"
	// EnvECSMetadataURI is set by ECS; the task id is read from it.
	EnvECSMetadataURI = "ECS_CONTAINER_METADATA_URI_V4"
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
}

// Error is a bad configuration value; it names the variable.
type Error struct {
	// Name is the environment variable, Value what it held, Want what is accepted.
	Name, Value, Want string
}

// Error implements error: the variable, its value and what is accepted.
func (e *Error) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Want)
}

// Load reads the environment through getenv (os.Getenv in main). An empty WorkerID is resolved by main (it may need
// a request to the ECS metadata endpoint).
func Load(getenv func(string) string) (Settings, error) {
	s := Settings{
		Stream:             getenv(EnvStreamName),
		Application:        getenv(EnvApplicationName),
		ConsumerARN:        getenv(EnvConsumerARN),
		KinesisEndpoint:    getenv(EnvKinesisEndpoint),
		DynamoDBEndpoint:   getenv(EnvDynamoDBEndpoint),
		WorkerID:           getenv(EnvWorkerID),
		CheckpointRecords:  DefaultCheckpointRecords,
		CheckpointInterval: DefaultCheckpointInterval,
		FailoverTime:       kcl.DefaultFailoverTime,
		ShutdownTimeout:    DefaultShutdownTimeout,
	}
	if s.Stream == "" {
		return s, &Error{EnvStreamName, "", "required: the Kinesis stream to read"}
	}
	if s.Application == "" {
		return s, &Error{EnvApplicationName, "", "required: names the lease table and the stream consumer"}
	}
	if strings.ContainsAny(s.Application, " /") || len(s.Application) > 128 {
		return s, &Error{EnvApplicationName, s.Application, "want a DynamoDB table name: 3-128 of a-z A-Z 0-9 _ - ."}
	}
	switch mode := getenv(EnvReadMode); mode {
	case "", "polling":
		s.ReadMode = kcl.ReadModePolling
	case "fanout":
		s.ReadMode = kcl.ReadModeFanOut
	default:
		return s, &Error{EnvReadMode, mode, "want fanout or polling"}
	}
	if s.ConsumerARN != "" && !strings.HasPrefix(s.ConsumerARN, "arn:") {
		return s, &Error{EnvConsumerARN, s.ConsumerARN, "want a stream consumer ARN"}
	}
	switch pos := getenv(EnvInitialPosition); pos {
	case "", kcl.CheckpointTrimHorizon:
		s.InitialPosition = kcl.CheckpointTrimHorizon
	case kcl.CheckpointLatest:
		s.InitialPosition = pos
	case kcl.CheckpointAtTimestamp:
		s.InitialPosition = pos
		ts := getenv(EnvInitialTimestamp)
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return s, &Error{EnvInitialTimestamp, ts, "want an RFC 3339 time with INITIAL_POSITION=AT_TIMESTAMP"}
		}
		s.InitialTimestamp = t
	default:
		return s, &Error{EnvInitialPosition, pos, "want TRIM_HORIZON, LATEST or AT_TIMESTAMP"}
	}
	for _, e := range []struct{ name, value string }{{EnvKinesisEndpoint, s.KinesisEndpoint}, {EnvDynamoDBEndpoint, s.DynamoDBEndpoint}} {
		if e.value != "" && !strings.HasPrefix(e.value, "http://") && !strings.HasPrefix(e.value, "https://") {
			return s, &Error{e.name, e.value, "want an http:// or https:// URL"}
		}
	}
	s.CreateLeaseTable = s.DynamoDBEndpoint != ""
	if v := getenv(EnvCreateLeaseTable); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, &Error{EnvCreateLeaseTable, v, "want true or false"}
		}
		s.CreateLeaseTable = b
	}
	if v := getenv(EnvCheckpointRecords); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, &Error{EnvCheckpointRecords, v, "want a whole number >= 1"}
		}
		s.CheckpointRecords = n
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{{EnvCheckpointInterval, &s.CheckpointInterval}, {EnvFailoverTime, &s.FailoverTime}, {EnvShutdownTimeout, &s.ShutdownTimeout}}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur <= 0 {
				return s, &Error{d.name, v, "want a positive Go duration such as 10s"}
			}
			*d.dst = dur
		}
	}
	return s, nil
}
