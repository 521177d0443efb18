// Command consumer is the stream's consumer worker: it shares the shards of the stream with the other workers of the
// same application through the KCL-compatible lease table (package kcl) and hands the records to a processor: by
// default it writes every record as one JSON line to stdout, checkpointing every CHECKPOINT_RECORDS records or
// CHECKPOINT_INTERVAL; with PROCESSOR=multilang it runs a MultiLang record processor of any language, one child
// process per shard (package multilang), as the Java KCL's MultiLangDaemon does, without a JVM.
//
// Configuration comes from the environment (package settings names the variables) and, as the Java daemon takes
// it, from a MultiLangDaemon properties file:
//
//	consumer --properties-file sample.properties   (or -p FILE, or the file as the only argument)
//
// A variable set in the environment wins over the file. A bad value exits with status 2 and a message naming the
// variable or the key. SIGTERM or SIGINT stops it gracefully: reading stops, the batch in hand is processed, the
// processors checkpoint and the leases are released so the other workers take them at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/multilang"
	"github.com/streamproc/streamproc/services/s3sink"
	"github.com/streamproc/streamproc/services/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := telemetry.NewSyncWriter(os.Stdout)
	s, err := loadSettings(os.Args[1:], os.LookupEnv, os.Stderr)
	logger := telemetry.NewLogger(out, s.LogLevel)
	if err != nil {
		logger.Error("bad configuration", telemetry.LogKeyError, err.Error())
		os.Exit(2)
	}
	for _, w := range s.Warnings {
		logger.Warn("configuration: " + w)
	}
	if err := run(ctx, s, out, logger); err != nil {
		logger.Error("consumer failed", telemetry.LogKeyError, err.Error())
		os.Exit(1)
	}
}

// loadSettings reads the command line (a MultiLangDaemon properties file, as the Java daemon takes it) and the
// environment through lookup.
func loadSettings(args []string, lookup func(string) (string, bool), usage io.Writer) (settings.Settings, error) {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(usage)
	var propertiesFile, logConfiguration string
	fs.StringVar(&propertiesFile, "properties-file", "", "a MultiLangDaemon properties `file`, as the Java daemon takes it")
	fs.StringVar(&propertiesFile, "p", "", "short for -properties-file")
	fs.StringVar(&logConfiguration, "log-configuration", "", "the Java daemon's logback `file`: not used (logs are JSON on stdout)")
	fs.StringVar(&logConfiguration, "l", "", "short for -log-configuration")
	if err := fs.Parse(args); err != nil {
		return settings.Settings{}, err
	}
	switch {
	case fs.NArg() == 1 && propertiesFile == "":
		propertiesFile = fs.Arg(0) // the Java daemon also takes the file as its only argument
	case fs.NArg() > 0:
		return settings.Settings{}, fmt.Errorf("unexpected arguments %q: the only argument is a properties file", fs.Args())
	}
	if propertiesFile == "" {
		return settings.Load(lookup)
	}
	fromFile, warnings, err := settings.PropertiesFile(propertiesFile)
	if err != nil {
		return settings.Settings{}, err
	}
	s, err := settings.LoadWithProperties(lookup, fromFile)
	if logConfiguration != "" {
		warnings = append(warnings, "--log-configuration "+logConfiguration+" is not used: logs are JSON lines on stdout")
	}
	s.Warnings = append(warnings, s.Warnings...)
	return s, err
}

// run reads the stream until ctx is cancelled, then shuts the worker down gracefully.
func run(ctx context.Context, s settings.Settings, out io.Writer, logger *slog.Logger) error {
	if s.WorkerID == "" {
		s.WorkerID = defaultWorkerID(ctx, os.Getenv(settings.EnvECSMetadataURI))
	}
	kc, ddb, err := newClients(ctx, s)
	if err != nil {
		return err
	}
	if s.ReadMode == kcl.ReadModeFanOut && s.ConsumerARN == "" {
		if s.ConsumerARN, err = ensureStreamConsumer(ctx, kc, s.Stream, s.Application); err != nil {
			return err
		}
	}
	mcfg := s.Metrics
	mcfg.Dimensions = []telemetry.Dimension{
		{Name: settings.MetricsDimensionService, Value: settings.MetricsServiceName},
		{Name: settings.MetricsDimensionApplication, Value: s.Application},
	}
	metrics, err := telemetry.NewMetrics(out, mcfg)
	if err != nil {
		return err
	}
	sinkClient, err := newS3Client(ctx, s)
	if err != nil {
		return err
	}
	worker, err := newWorker(s, kc, ddb, sinkClient, out, logger, metrics)
	if err != nil {
		return err
	}
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	metricsDone := make(chan struct{})
	go func() {
		defer close(metricsDone)
		_ = metrics.Run(metricsCtx)
	}()
	logger.Info("consumer started", telemetry.LogKeyWorkerID, s.WorkerID, telemetry.LogKeyStream, s.Stream, "read_mode", string(s.ReadMode))
	runErr := worker.Run(ctx) // graceful on ctx's end: the processors checkpoint, the leases are released
	logger.Info("consumer stopped", telemetry.LogKeyWorkerID, s.WorkerID)
	stopMetrics()
	<-metricsDone
	if err := metrics.Flush(); err != nil {
		logger.Warn("flush metrics failed", telemetry.LogKeyError, err.Error())
	}
	return runErr
}

// newClients returns the Kinesis and DynamoDB clients, pointed at the endpoint overrides when set.
func newClients(ctx context.Context, s settings.Settings) (*kinesis.Client, *dynamodb.Client, error) {
	awsCfg, err := s.AWS.Config(ctx)
	if err != nil {
		return nil, nil, err
	}
	kc := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if s.KinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(s.KinesisEndpoint)
		}
	})
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if s.DynamoDBEndpoint != "" {
			o.BaseEndpoint = aws.String(s.DynamoDBEndpoint)
		}
	})
	return kc, ddb, nil
}

// newS3Client returns the S3 sink's client (path-style at an endpoint override), or nil when the sink is not used.
func newS3Client(ctx context.Context, s settings.Settings) (*s3.Client, error) {
	if s.Processor != settings.ProcessorS3 {
		return nil, nil
	}
	awsCfg, err := s.AWS.Config(ctx)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if s.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(s.S3Endpoint)
			o.UsePathStyle = true // emulators serve no bucket host names
		}
	}), nil
}

// newWorker configures the KCL worker with the processor the settings choose.
func newWorker(s settings.Settings, kc *kinesis.Client, ddb *dynamodb.Client, sinkClient s3sink.S3API, out io.Writer,
	logger *slog.Logger, metrics telemetry.Recorder) (*kcl.Worker, error) {
	// The worker adds the stream and worker id to its own lines; the processors' lines get the id here.
	newProcessor, err := processorFor(s, sinkClient, out, logger.With(telemetry.LogKeyWorkerID, s.WorkerID), metrics)
	if err != nil {
		return nil, err
	}
	return kcl.New(kcl.Config{
		StreamName:                s.Stream,
		LeaseTableName:            s.Application,
		WorkerID:                  s.WorkerID,
		NewProcessor:              newProcessor,
		ReadMode:                  s.ReadMode,
		ConsumerARN:               s.ConsumerARN,
		InitialPosition:           s.InitialPosition,
		InitialTimestamp:          s.InitialTimestamp,
		CreateLeaseTable:          s.CreateLeaseTable,
		FailoverTime:              s.FailoverTime,
		ShardSyncInterval:         s.ShardSyncInterval,
		MaxRecordsPerCall:         int32(s.MaxRecords),
		PollIdleInterval:          s.PollIdleInterval,
		ProcessEmptyBatches:       s.ProcessEmptyBatches,
		ShutdownTimeout:           s.ShutdownTimeout,
		Balancing:                 s.Balancing,
		RebalanceThresholdPercent: s.RebalanceThresholdPercent,
		HandoffTimeout:            s.HandoffTimeout,
		Logger:                    logger,
		Metrics:                   metrics,
	}, kc, ddb)
}

// processorFor returns the processors the settings choose: JSON lines on stdout, a MultiLang record processor, or
// the S3 sink writing through sinkClient.
func processorFor(s settings.Settings, sinkClient s3sink.S3API, out io.Writer, logger *slog.Logger,
	metrics telemetry.Recorder) (func() kcl.Processor, error) {
	if s.Processor == settings.ProcessorS3 {
		cfg := s.S3
		cfg.Logger, cfg.Metrics = logger, metrics
		return s3sink.NewProcessorFunc(cfg, sinkClient)
	}
	if s.Processor == settings.ProcessorMultiLang {
		cfg := s.MultiLang
		cfg.Logger, cfg.Metrics = logger, metrics
		return multilang.NewProcessorFunc(cfg)
	}
	return func() kcl.Processor {
		return &stdoutProcessor{out: out, log: logger, checkpointRecords: s.CheckpointRecords,
			checkpointInterval: s.CheckpointInterval, now: time.Now}
	}, nil
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
