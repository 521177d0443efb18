// Command consumer is the stream's consumer worker: it shares the shards of the stream with the other workers of the
// same application through the KCL-compatible lease table (package kcl), and writes every record as one JSON line
// to stdout, checkpointing every CHECKPOINT_RECORDS records or CHECKPOINT_INTERVAL.
//
// Configuration comes from the environment (the Env... constants); a bad value exits with status 2 and a message
// naming the variable. SIGTERM or SIGINT stops it gracefully: reading stops, the batch in hand is written, the
// processors checkpoint and the leases are released so the other workers take them at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
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

// settings is the validated configuration.
type settings struct {
	stream, application string
	readMode            kcl.ReadMode
	consumerARN         string
	initialPosition     string
	initialTimestamp    time.Time
	kinesisEndpoint     string
	dynamoDBEndpoint    string
	workerID            string
	createLeaseTable    bool
	checkpointRecords   int
	checkpointInterval  time.Duration
	failoverTime        time.Duration
	shutdownTimeout     time.Duration
}

// envError names the variable that is wrong.
type envError struct {
	name, value, want string
}

func (e *envError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.name, e.value, e.want)
}

// loadSettings reads the environment through getenv. The worker id is resolved separately (it may need a request).
func loadSettings(getenv func(string) string) (settings, error) {
	s := settings{
		stream:             getenv(EnvStreamName),
		application:        getenv(EnvApplicationName),
		consumerARN:        getenv(EnvConsumerARN),
		kinesisEndpoint:    getenv(EnvKinesisEndpoint),
		dynamoDBEndpoint:   getenv(EnvDynamoDBEndpoint),
		workerID:           getenv(EnvWorkerID),
		checkpointRecords:  1000,
		checkpointInterval: 10 * time.Second,
		failoverTime:       kcl.DefaultFailoverTime,
		shutdownTimeout:    25 * time.Second,
	}
	if s.stream == "" {
		return s, &envError{EnvStreamName, "", "required: the Kinesis stream to read"}
	}
	if s.application == "" {
		return s, &envError{EnvApplicationName, "", "required: names the lease table and the stream consumer"}
	}
	if strings.ContainsAny(s.application, " /") || len(s.application) > 128 {
		return s, &envError{EnvApplicationName, s.application, "want a DynamoDB table name: 3-128 of a-z A-Z 0-9 _ - ."}
	}
	switch mode := getenv(EnvReadMode); mode {
	case "", "polling":
		s.readMode = kcl.ReadModePolling
	case "fanout":
		s.readMode = kcl.ReadModeFanOut
	default:
		return s, &envError{EnvReadMode, mode, "want fanout or polling"}
	}
	if s.consumerARN != "" && !strings.HasPrefix(s.consumerARN, "arn:") {
		return s, &envError{EnvConsumerARN, s.consumerARN, "want a stream consumer ARN"}
	}
	switch pos := getenv(EnvInitialPosition); pos {
	case "", kcl.CheckpointTrimHorizon:
		s.initialPosition = kcl.CheckpointTrimHorizon
	case kcl.CheckpointLatest:
		s.initialPosition = pos
	case kcl.CheckpointAtTimestamp:
		s.initialPosition = pos
		ts := getenv(EnvInitialTimestamp)
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return s, &envError{EnvInitialTimestamp, ts, "want an RFC 3339 time with INITIAL_POSITION=AT_TIMESTAMP"}
		}
		s.initialTimestamp = t
	default:
		return s, &envError{EnvInitialPosition, pos, "want TRIM_HORIZON, LATEST or AT_TIMESTAMP"}
	}
	for _, e := range []struct{ name, value string }{{EnvKinesisEndpoint, s.kinesisEndpoint}, {EnvDynamoDBEndpoint, s.dynamoDBEndpoint}} {
		if e.value != "" && !strings.HasPrefix(e.value, "http://") && !strings.HasPrefix(e.value, "https://") {
			return s, &envError{e.name, e.value, "want an http:// or https:// URL"}
		}
	}
	s.createLeaseTable = s.dynamoDBEndpoint != ""
	if v := getenv(EnvCreateLeaseTable); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, &envError{EnvCreateLeaseTable, v, "want true or false"}
		}
		s.createLeaseTable = b
	}
	if v := getenv(EnvCheckpointRecords); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return s, &envError{EnvCheckpointRecords, v, "want a whole number >= 1"}
		}
		s.checkpointRecords = n
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{{EnvCheckpointInterval, &s.checkpointInterval}, {EnvFailoverTime, &s.failoverTime}, {EnvShutdownTimeout, &s.shutdownTimeout}}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil || dur <= 0 {
				return s, &envError{d.name, v, "want a positive Go duration such as 10s"}
			}
			*d.dst = dur
		}
	}
	return s, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := &lockedWriter{w: os.Stdout}
	logger := telemetry.NewLogger(out, slog.LevelInfo)
	s, err := loadSettings(os.Getenv)
	if err != nil {
		logger.Error("bad configuration", telemetry.LogKeyError, err.Error())
		os.Exit(2)
	}
	if err := run(ctx, s, out, logger); err != nil {
		logger.Error("consumer failed", telemetry.LogKeyError, err.Error())
		os.Exit(1)
	}
}

// run reads the stream until ctx is cancelled, then shuts the worker down gracefully.
func run(ctx context.Context, s settings, out io.Writer, logger *slog.Logger) error {
	if s.workerID == "" {
		s.workerID = defaultWorkerID(ctx, os.Getenv(EnvECSMetadataURI))
	}
	awsCfg, err := loadAWSConfig(ctx, s)
	if err != nil {
		return err
	}
	kc := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if s.kinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(s.kinesisEndpoint)
		}
	})
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if s.dynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(s.dynamoDBEndpoint)
		}
	})
	if s.readMode == kcl.ReadModeFanOut && s.consumerARN == "" {
		if s.consumerARN, err = ensureStreamConsumer(ctx, kc, s.stream, s.application); err != nil {
			return err
		}
	}
	metrics, err := telemetry.NewMetrics(out, telemetry.MetricsConfig{Dimensions: []telemetry.Dimension{
		{Name: "Service", Value: "consumer"}, {Name: "Application", Value: s.application},
	}})
	if err != nil {
		return err
	}
	logger = logger.With(telemetry.LogKeyWorkerID, s.workerID)
	worker, err := kcl.New(kcl.Config{
		StreamName:       s.stream,
		LeaseTableName:   s.application,
		WorkerID:         s.workerID,
		ReadMode:         s.readMode,
		ConsumerARN:      s.consumerARN,
		InitialPosition:  s.initialPosition,
		InitialTimestamp: s.initialTimestamp,
		CreateLeaseTable: s.createLeaseTable,
		FailoverTime:     s.failoverTime,
		Logger:           logger,
		Metrics:          metrics,
		NewProcessor: func() kcl.Processor {
			return &stdoutProcessor{out: out, log: logger, checkpointRecords: s.checkpointRecords,
				checkpointInterval: s.checkpointInterval, now: time.Now}
		},
	}, kc, ddb)
	if err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	metricsDone := make(chan struct{})
	go func() {
		defer close(metricsDone)
		_ = metrics.Run(metricsCtx)
	}()
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx) }()
	logger.Info("consumer started", telemetry.LogKeyStream, s.stream, "read_mode", string(s.readMode))

	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		logger.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
		if err := worker.Shutdown(shutdownCtx); err != nil {
			logger.Warn("graceful shutdown did not finish in time; stopping at once", telemetry.LogKeyError, err.Error())
			cancelRun()
		}
		cancel()
		runErr = <-done
		if errors.Is(runErr, context.Canceled) {
			runErr = nil
		}
	}
	stopMetrics()
	<-metricsDone
	if err := metrics.Flush(); err != nil {
		logger.Warn("flush metrics failed", telemetry.LogKeyError, err.Error())
	}
	return runErr
}

// loadAWSConfig loads the SDK configuration; with an endpoint override and no credentials in the environment it
// uses static dummy credentials, which the emulators accept.
func loadAWSConfig(ctx context.Context, s settings) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	local := s.kinesisEndpoint != "" || s.dynamoDBEndpoint != ""
	if local && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	if local && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// ensureStreamConsumer returns the ARN of the stream consumer named name, registering it when missing, and waits
// until it is active.
func ensureStreamConsumer(ctx context.Context, kc *kinesis.Client, stream, name string) (string, error) {
	d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
	if err != nil {
		return "", fmt.Errorf("describe stream %s: %w", stream, err)
	}
	streamARN := d.StreamDescriptionSummary.StreamARN
	var arn string
	c, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: &name})
	var notFound *ktypes.ResourceNotFoundException
	switch {
	case err == nil:
		arn = aws.ToString(c.ConsumerDescription.ConsumerARN)
	case errors.As(err, &notFound):
		r, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: &name})
		var inUse *ktypes.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return "", fmt.Errorf("register stream consumer %s: %w", name, err)
		}
		if err == nil {
			arn = aws.ToString(r.Consumer.ConsumerARN)
		}
	default:
		return "", fmt.Errorf("describe stream consumer %s: %w", name, err)
	}
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		in := &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: &name}
		c, err := kc.DescribeStreamConsumer(ctx, in)
		if err == nil && c.ConsumerDescription.ConsumerStatus == ktypes.ConsumerStatusActive {
			if arn == "" {
				arn = aws.ToString(c.ConsumerDescription.ConsumerARN)
			}
			return arn, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for stream consumer %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// defaultWorkerID is the ECS task id (from the task metadata endpoint) when running on ECS, else the hostname.
func defaultWorkerID(ctx context.Context, metadataURI string) string {
	if metadataURI != "" {
		if id, err := ecsTaskID(ctx, metadataURI); err == nil {
			return id
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return fmt.Sprintf("worker-%d", os.Getpid())
}

// ecsTaskID reads the task ARN from the ECS task metadata endpoint (v4) and returns its last path element.
func ecsTaskID(ctx context.Context, metadataURI string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(metadataURI, "/")+"/task", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("task metadata: status %d", resp.StatusCode)
	}
	var task struct {
		TaskARN string `json:"TaskARN"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&task); err != nil {
		return "", fmt.Errorf("task metadata: %w", err)
	}
	id := path.Base(task.TaskARN)
	if task.TaskARN == "" || id == "." || id == "/" {
		return "", errors.New("task metadata: no TaskARN")
	}
	return id, nil
}
