// Package settings names the producer service's environment variables and
// parses them into the values its main wires together. The names are
// exported so the CDK stack sets exactly what the service reads.
package settings

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Environment variables the producer service reads.
const (
	// EnvStreamName is the Kinesis stream to put to. Required.
	EnvStreamName = "STREAM_NAME"
	// EnvRegion is the AWS region. Default: the SDK's usual sources (the
	// task's region on ECS).
	EnvRegion = "AWS_REGION"
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
	// EnvStopTimeout bounds the whole shutdown after SIGTERM: drain window,
	// in-flight requests and the final flush. Keep it below the ECS task's
	// stopTimeout (30 s by default), which ends in SIGKILL. Default: 25s.
	EnvStopTimeout = "STOP_TIMEOUT"

	// EnvLogLevel is debug, info, warn or error. Default: info.
	EnvLogLevel = "LOG_LEVEL"
	// EnvMetricsNamespace is the CloudWatch namespace of the EMF metrics.
	// Default: telemetry.DefaultNamespace.
	EnvMetricsNamespace = "METRICS_NAMESPACE"
	// EnvMetricsInterval is how often metrics are written. Default: 1m.
	EnvMetricsInterval = "METRICS_INTERVAL"
)

// Defaults of the settings that are not the producer engine's.
const (
	DefaultPort        = 8080
	DefaultDrainWindow = 5 * time.Second
	DefaultStopTimeout = 25 * time.Second
	// LocalRegion is the region used with EnvKinesisEndpoint when EnvRegion is unset.
	LocalRegion = "us-east-1"
)

// Settings is the parsed environment.
type Settings struct {
	// Region is EnvRegion; empty leaves it to the SDK.
	Region string
	// ListenHost and Port are the listening address.
	ListenHost string
	// Port is EnvPort, the TCP port. Default: DefaultPort.
	Port int
	// KinesisEndpoint is EnvKinesisEndpoint; empty means AWS.
	KinesisEndpoint string
	// LocalCredentials is set when KinesisEndpoint is set and the
	// environment names no AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE):
	// emulators accept any, so static dummy ones are used.
	LocalCredentials bool
	// Producer is the engine's configuration (StreamName and the buffering
	// knobs; the zero values of the others mean the engine's defaults).
	Producer kpl.ProducerConfig
	// DrainWindow and StopTimeout shape the shutdown (see EnvDrainWindow,
	// EnvStopTimeout).
	DrainWindow time.Duration
	// StopTimeout bounds the whole shutdown after SIGTERM (EnvStopTimeout).
	// Default: DefaultStopTimeout.
	StopTimeout time.Duration
	// LogLevel filters the JSON logs.
	LogLevel slog.Level
	// Metrics configures the EMF writer.
	Metrics telemetry.MetricsConfig
}

// FromEnv reads the settings with lookup (os.LookupEnv in main). Every error
// names the variable at fault; all of them are reported at once.
func FromEnv(lookup func(string) (string, bool)) (Settings, error) {
	p := parser{lookup: lookup}
	s := Settings{
		Region:          p.str(EnvRegion),
		KinesisEndpoint: p.str(EnvKinesisEndpoint),
		ListenHost:      p.str(EnvListenHost),
		Port:            p.integer(EnvPort, DefaultPort, 1, 65535),
		DrainWindow:     p.duration(EnvDrainWindow, DefaultDrainWindow, true),
		StopTimeout:     p.duration(EnvStopTimeout, DefaultStopTimeout, false),
		LogLevel:        p.level(EnvLogLevel),
		Metrics: telemetry.MetricsConfig{
			Namespace:     p.str(EnvMetricsNamespace),
			FlushInterval: p.duration(EnvMetricsInterval, telemetry.DefaultFlushInterval, false),
		},
		Producer: kpl.ProducerConfig{
			StreamName:        p.str(EnvStreamName),
			MaxBufferedTime:   p.duration(EnvMaxBufferedTime, kpl.DefaultMaxBufferedTime, false),
			RecordTTL:         p.duration(EnvRecordTTL, kpl.DefaultRecordTTL, false),
			MaxAggregateBytes: p.integer(EnvMaxAggregateBytes, kpl.DefaultMaxAggregateBytes, kpl.EmptyAggregateSize+1, kpl.MaxRecordSize-1024),
			MaxBufferedBytes:  int64(p.integer(EnvMaxBufferedBytes, kpl.DefaultMaxBufferedBytes, kpl.MaxRecordSize, 1<<40)),
			RateLimitPercent:  p.integer(EnvRateLimitPercent, kpl.DefaultRateLimitPercent, 1, 10000),
			MaxInFlight:       p.integer(EnvMaxInFlight, kpl.DefaultMaxInFlight, 1, 10000),
		},
	}
	if s.KinesisEndpoint != "" {
		s.LocalCredentials = p.str("AWS_ACCESS_KEY_ID") == "" && p.str("AWS_PROFILE") == ""
		if s.Region == "" {
			s.Region = LocalRegion
		}
	}
	if s.Producer.StreamName == "" {
		p.fail(EnvStreamName, "is required")
	}
	if s.KinesisEndpoint != "" && !strings.HasPrefix(s.KinesisEndpoint, "http://") && !strings.HasPrefix(s.KinesisEndpoint, "https://") {
		p.fail(EnvKinesisEndpoint, "%q: want an http:// or https:// URL", s.KinesisEndpoint)
	}
	if s.DrainWindow >= s.StopTimeout && s.StopTimeout > 0 {
		p.fail(EnvDrainWindow, "%v: want less than %s (%v), which bounds the whole shutdown", s.DrainWindow, EnvStopTimeout, s.StopTimeout)
	}
	return s, errors.Join(p.errs...)
}

// parser collects every error instead of stopping at the first.
type parser struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (p *parser) fail(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s "+format, append([]any{name}, args...)...))
}

func (p *parser) str(name string) string {
	v, _ := p.lookup(name)
	return strings.TrimSpace(v)
}

func (p *parser) integer(name string, def, lo, hi int) int {
	v := p.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, "=%q: want an integer from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// duration parses a Go duration ("250ms", "30s"); zero is allowed only when zeroOK.
func (p *parser) duration(name string, def time.Duration, zeroOK bool) time.Duration {
	v := p.str(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || (d == 0 && !zeroOK) {
		want := "a positive Go duration such as 250ms or 30s"
		if zeroOK {
			want = "a Go duration >= 0 such as 0s or 5s"
		}
		p.fail(name, "=%q: want %s", v, want)
		return def
	}
	return d
}

func (p *parser) level(name string) slog.Level {
	v := p.str(name)
	if v == "" {
		return slog.LevelInfo
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		p.fail(name, "=%q: want debug, info, warn or error", v)
		return slog.LevelInfo
	}
	return l
}
