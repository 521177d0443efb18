// Package settings names the producer service's environment variables and parses them into the values its main
// wires together. The names are exported so the CDK stack sets exactly what the service reads.
package settings

import (
	"time"

	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kpl"
)

// Environment variables the producer service reads.
const (
	// EnvStreamName is the Kinesis stream to put to. Required.
	EnvStreamName = "STREAM_NAME"
	// EnvRegion is the AWS region. Default: the SDK's usual sources (the
	// task's region on ECS).
	EnvRegion = envconfig.EnvRegion
	// EnvPort is the TCP port the HTTP server listens on. Default: 8080.
	EnvPort = "PORT"
	// EnvListenHost is the address the HTTP server binds, such as 127.0.0.1
	// for a local run. Default: empty, every interface (as in a container).
	EnvListenHost = "LISTEN_HOST"
	// EnvKinesisEndpoint overrides the Kinesis endpoint (an emulator's URL).
	// With it, AWS_REGION defaults to us-east-1 and, without AWS credentials
	// in the environment, static dummy credentials are used.
	// Default: the region's Kinesis endpoint.
	EnvKinesisEndpoint = "KINESIS_ENDPOINT"

	// EnvMaxBufferedTime is how long an aggregate waits for more records (the
	// KPL's RecordMaxBufferedTime), as a Go duration ("100ms"). Default: 100ms.
	EnvMaxBufferedTime = "MAX_BUFFERED_TIME"
	// EnvRecordTTL is how long a record may wait for Kinesis, retries
	// included, before its request fails with 504. Default: 30s.
	EnvRecordTTL = "RECORD_TTL"
	// EnvMaxAggregateBytes caps one aggregated Kinesis record. Default: 51200.
	EnvMaxAggregateBytes = "MAX_AGGREGATE_BYTES"
	// EnvMaxBufferedBytes bounds the buffer; past it requests get 503.
	// Default: 64 MiB (67108864).
	EnvMaxBufferedBytes = "MAX_BUFFERED_BYTES"
	// EnvRateLimitPercent is the share of each shard's write limits the
	// producer uses (the KPL's RateLimit). Default: 150.
	EnvRateLimitPercent = "RATE_LIMIT_PERCENT"
	// EnvMaxInFlight caps concurrent PutRecords calls. Default: 24.
	EnvMaxInFlight = "MAX_IN_FLIGHT"

	// EnvDrainWindow is how long, after SIGTERM, the health check answers
	// 503 while records are still taken, so the load balancer stops routing
	// here first. Default: 5s.
	EnvDrainWindow = "DRAIN_WINDOW"
	// EnvShutdownTimeout bounds the whole shutdown after SIGTERM: drain
	// window, in-flight requests and the final flush. Keep it below the ECS
	// task's stopTimeout (30 s by default), which ends in SIGKILL. The
	// consumer's variable of the same name bounds its shutdown. Default: 25s.
	EnvShutdownTimeout = "SHUTDOWN_TIMEOUT"
	// EnvStopTimeoutDeprecated is EnvShutdownTimeout's former name, still
	// accepted with a warning.
	EnvStopTimeoutDeprecated = "STOP_TIMEOUT"

	// EnvLogLevel is debug, info, warn or error. Default: info.
	EnvLogLevel = envconfig.EnvLogLevel
	// EnvMetricsNamespace is the CloudWatch namespace of the EMF metrics.
	// Default: telemetry.DefaultNamespace.
	EnvMetricsNamespace = envconfig.EnvMetricsNamespace
	// EnvMetricsInterval is how often metrics are written. Default: 1m.
	EnvMetricsInterval = envconfig.EnvMetricsInterval
)

// Defaults of the settings that are not the producer engine's.
const (
	// DefaultPort is EnvPort's default.
	DefaultPort = 8080
	// DefaultDrainWindow is EnvDrainWindow's default.
	DefaultDrainWindow = 5 * time.Second
	// DefaultShutdownTimeout is EnvShutdownTimeout's default, under ECS's
	// default 30 s stop timeout.
	DefaultShutdownTimeout = 25 * time.Second
	// LocalRegion is the region used with EnvKinesisEndpoint when EnvRegion is unset.
	LocalRegion = envconfig.LocalRegion
)

// Settings is the parsed environment.
type Settings struct {
	// AWS holds the region (EnvRegion) and, with KinesisEndpoint set and no
	// AWS credentials in the environment, the use of dummy credentials that
	// emulators accept.
	envconfig.AWS
	// ListenHost and Port are the listening address.
	ListenHost string
	// Port is EnvPort, the TCP port. Default: DefaultPort.
	Port int
	// KinesisEndpoint is EnvKinesisEndpoint; empty means AWS.
	KinesisEndpoint string
	// Producer is the engine's configuration (StreamName and the buffering
	// knobs; the zero values of the others mean the engine's defaults).
	Producer kpl.Config
	// DrainWindow is how long the health check answers 503 before the
	// server stops accepting (EnvDrainWindow). Default: DefaultDrainWindow.
	DrainWindow time.Duration
	// ShutdownTimeout bounds the whole shutdown after SIGTERM
	// (EnvShutdownTimeout). Default: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Telemetry holds the log level (EnvLogLevel) and the EMF writer's
	// namespace and interval (EnvMetricsNamespace, EnvMetricsInterval).
	envconfig.Telemetry
	// Warnings are settings that were accepted but deserve a log line,
	// such as a deprecated variable name.
	Warnings []string
}

// Load reads the settings with lookup (os.LookupEnv in main). Every error
// is an *envconfig.Error naming the variable at fault; all of them are
// reported at once.
func Load(lookup func(string) (string, bool)) (Settings, error) {
	p := envconfig.NewParser(lookup)
	p.Renamed(EnvShutdownTimeout, EnvStopTimeoutDeprecated)
	s := Settings{
		KinesisEndpoint: p.URL(EnvKinesisEndpoint),
		ListenHost:      p.String(EnvListenHost),
		Port:            p.Int(EnvPort, DefaultPort, 1, 65535),
		DrainWindow:     p.DurationOrZero(EnvDrainWindow, DefaultDrainWindow),
		ShutdownTimeout: p.Duration(EnvShutdownTimeout, DefaultShutdownTimeout),
		Telemetry:       p.Telemetry(),
		Producer: kpl.Config{
			StreamName:        p.Required(EnvStreamName, "the Kinesis stream to put to"),
			MaxBufferedTime:   p.Duration(EnvMaxBufferedTime, kpl.DefaultMaxBufferedTime),
			RecordTTL:         p.Duration(EnvRecordTTL, kpl.DefaultRecordTTL),
			MaxAggregateBytes: p.Int(EnvMaxAggregateBytes, kpl.DefaultMaxAggregateBytes, kpl.EmptyAggregateSize+1, kpl.MaxRecordSize-1024),
			MaxBufferedBytes:  int64(p.Int(EnvMaxBufferedBytes, kpl.DefaultMaxBufferedBytes, kpl.MaxRecordSize, 1<<40)),
			RateLimitPercent:  p.Int(EnvRateLimitPercent, kpl.DefaultRateLimitPercent, 1, 10000),
			MaxInFlight:       p.Int(EnvMaxInFlight, kpl.DefaultMaxInFlight, 1, 10000),
		},
	}
	s.AWS = p.AWS(s.KinesisEndpoint != "")
	if s.DrainWindow >= s.ShutdownTimeout {
		p.Invalid(EnvDrainWindow, "want less than "+EnvShutdownTimeout+" ("+s.ShutdownTimeout.String()+"), which bounds the whole shutdown")
	}
	s.Warnings = p.Warnings()
	return s, p.Err()
}
