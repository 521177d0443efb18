// Package pipeline runs the whole streaming pipeline on this machine with no AWS account: the Kinesis, DynamoDB and
// CloudWatch emulators on 127.0.0.1, the stream, the consumers' lease table and fan-out consumer, the producer and
// the consumer workers built from this repository and run as child processes with the environment they read in
// AWS, and the shard autoscaler's code on a timer.
//
// kinesis-local publishes no AWS/Kinesis metrics, so the pipeline publishes the stream's IncomingBytes and
// IncomingRecords to the CloudWatch emulator from the producer's own EMF lines (what it put), and the unchanged
// autoscaler (package scaler) reads them and reshards the local stream. Fan-out consumers reach kinesis-local
// through emulator.FanOutProxy, which adds the one event the emulator leaves out.
//
// `make local` (services/local) and the end-to-end tests use it; the tests also inject faults through it (a
// worker killed, the producer restarted, a resharding).
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	consumersettings "github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/kcl"
	producersettings "github.com/streamproc/streamproc/services/producer/settings"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Read modes of the consumer workers (the consumer's READ_MODE values).
const (
	ReadModeFanOut  = "fanout"
	ReadModePolling = "polling"
)

// Sinks of the consumer workers (Config.Sink).
const (
	// SinkLog writes each record as a JSON line to the worker's log.
	SinkLog = "log"
	// SinkS3 lands the records in LakeBucket on moto's S3, exactly once (package s3sink).
	SinkS3 = "s3"
	// LakeBucket is the local lake's bucket; the objects are under the consumer's default prefix.
	LakeBucket = "local-lake"
	// DefaultLakeMaxObjectAge flushes the local objects quickly, so what lands can be read seconds after it was
	// sent (the deployed consumer keeps the sink's 1 minute).
	DefaultLakeMaxObjectAge = 5 * time.Second
)

// ApplicationName names the consumers' lease table and their fan-out stream consumer.
const ApplicationName = "local-consumer"

// Defaults of Config.
const (
	DefaultPort              = 8080
	DefaultShards            = 5
	DefaultStream            = "local-stream"
	DefaultDir               = ".local"
	DefaultConsumers         = 2
	DefaultAutoscaleInterval = time.Minute
	DefaultMetricsInterval   = 2 * time.Second
	// DefaultDashboardPort is the local dashboard's port on 127.0.0.1.
	DefaultDashboardPort = 8090
	// publishInterval is how often the producer's new EMF lines become CloudWatch datapoints.
	publishInterval = 5 * time.Second
)

// stopTimeout bounds each service's shutdown after SIGTERM; the services' own default stop timeouts are below it.
const stopTimeout = max(producersettings.DefaultShutdownTimeout, consumersettings.DefaultShutdownTimeout) + 5*time.Second

// Config configures a local pipeline. The zero value of every field means its documented default.
type Config struct {
	// Port is the producer's port on 127.0.0.1. Default: DefaultPort (8080).
	Port int
	// Shards is the shard count of the stream when it is created. Default: DefaultShards (5).
	Shards int
	// Stream names the Kinesis stream. Default: DefaultStream.
	Stream string
	// Dir holds bin/ (the built services) and logs/ (one log per process). Default: DefaultDir (.local).
	Dir string
	// Consumers is the number of consumer workers; they share the stream's leases. Default: DefaultConsumers (2).
	Consumers int
	// ReadMode is ReadModeFanOut or ReadModePolling. Default: ReadModeFanOut.
	ReadMode string
	// FailoverTime is the workers' lease failover time. Default: the consumer's own (10 s).
	FailoverTime time.Duration
	// CheckpointInterval is the longest time between a worker's checkpoints. Default: the consumer's own (10 s).
	CheckpointInterval time.Duration
	// AutoscaleInterval is how often the autoscaler decides, as its schedule does in AWS. A negative value turns the
	// timer off (Autoscale still works). Default: DefaultAutoscaleInterval (1 minute).
	AutoscaleInterval time.Duration
	// Policy tunes the autoscaler. Default: the policy's defaults, as the Lambda's.
	Policy policy.Config
	// MetricsInterval is how often the services write their EMF metrics. Default: DefaultMetricsInterval (2 s), so
	// the status line and the published stream metrics follow the load closely.
	MetricsInterval time.Duration
	// BuildOutput receives the output of `go build`. Default: os.Stderr.
	BuildOutput io.Writer
	// DashboardPort is the local dashboard's port on 127.0.0.1; negative turns it off. Default: DefaultDashboardPort.
	DashboardPort int
	// MultiLangCommand, when set, makes the workers run this MultiLang record processor (any language) instead of
	// writing JSON lines. Default: none.
	MultiLangCommand string
	// PropertiesFile, when set, is a MultiLangDaemon properties file the workers are started with, as the Java
	// daemon is; the runner's own settings (stream, application, endpoints) win over the file's. Default: none.
	PropertiesFile string
	// Sink is what the workers do with the records when they run no MultiLang processor: SinkLog or SinkS3.
	// Default: SinkLog.
	Sink string
	// LakeMaxObjectAge is how long the S3 sink keeps an object open. Default: DefaultLakeMaxObjectAge.
	LakeMaxObjectAge time.Duration
}

func (cfg Config) withDefaults() (Config, error) {
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	cfg.Shards = cmp.Or(cfg.Shards, DefaultShards)
	cfg.Consumers = cmp.Or(cfg.Consumers, DefaultConsumers)
	cfg.Stream = cmp.Or(cfg.Stream, DefaultStream)
	cfg.Dir = cmp.Or(cfg.Dir, DefaultDir)
	cfg.ReadMode = cmp.Or(cfg.ReadMode, ReadModeFanOut)
	cfg.AutoscaleInterval = cmp.Or(cfg.AutoscaleInterval, DefaultAutoscaleInterval)
	cfg.MetricsInterval = cmp.Or(cfg.MetricsInterval, DefaultMetricsInterval)
	cfg.DashboardPort = cmp.Or(cfg.DashboardPort, DefaultDashboardPort)
	cfg.BuildOutput = cmp.Or[io.Writer](cfg.BuildOutput, os.Stderr)
	cfg.Sink = cmp.Or(cfg.Sink, SinkLog)
	cfg.LakeMaxObjectAge = cmp.Or(cfg.LakeMaxObjectAge, DefaultLakeMaxObjectAge)
	if cfg.Sink != SinkLog && cfg.Sink != SinkS3 {
		return cfg, fmt.Errorf("pipeline: sink %q: want %s or %s", cfg.Sink, SinkLog, SinkS3)
	}
	if cfg.PropertiesFile != "" {
		abs, err := filepath.Abs(cfg.PropertiesFile)
		if err != nil {
			return cfg, fmt.Errorf("pipeline: properties file: %w", err)
		}
		cfg.PropertiesFile = abs // the workers run from the runner's folder, but say where it is in their logs
	}
	switch {
	case cfg.Port < 1 || cfg.Port > 65535:
		return cfg, fmt.Errorf("pipeline: port %d: want 1-65535", cfg.Port)
	case cfg.DashboardPort > 65535 || cfg.DashboardPort == cfg.Port:
		return cfg, fmt.Errorf("pipeline: dashboard port %d: want 1-65535 and not the producer's, or negative for none", cfg.DashboardPort)
	case cfg.Shards < 1:
		return cfg, fmt.Errorf("pipeline: shards %d: want at least 1", cfg.Shards)
	case cfg.Consumers < 1:
		return cfg, fmt.Errorf("pipeline: consumers %d: want at least 1", cfg.Consumers)
	case cfg.ReadMode != ReadModeFanOut && cfg.ReadMode != ReadModePolling:
		return cfg, fmt.Errorf("pipeline: read mode %q: want %s or %s", cfg.ReadMode, ReadModeFanOut, ReadModePolling)
	case cfg.FailoverTime < 0 || cfg.CheckpointInterval < 0 || cfg.MetricsInterval < 0:
		return cfg, errors.New("pipeline: failover time, checkpoint interval and metrics interval must not be negative")
	}
	if _, err := policy.New(cfg.Policy); err != nil {
		return cfg, fmt.Errorf("pipeline: autoscaler: %w", err)
	}
	return cfg, nil
}

// Pipeline is a running local pipeline. Stop ends every process it started.
type Pipeline struct {
	cfg         Config
	logDir      string
	producerBin string
	consumerBin string

	emu    *emulator.Emulators
	emuLog *os.File
	proxy  *emulator.FanOutProxy
	// consumerKinesisEndpoint is the proxy's URL in fan-out mode, kinesis-local's otherwise.
	consumerKinesisEndpoint string
	consumerARN             string

	kinesis   *kinesis.Client
	publisher *streamMetricsPublisher
	dashboard *http.Server
	// started is when Start began.
	started   time.Time
	scaler    *scaler.Scaler
	scalerLog *os.File

	failed chan error

	mu          sync.Mutex
	producer    *service
	consumers   []*service
	processed   map[string]*processedCounter
	lastScaling string

	stopLoops context.CancelFunc
	loopsDone chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

// Start builds the services, starts the emulators and every process, and returns once the producer serves and the
// workers run. On an error it stops what it started. ctx bounds the start only; Stop ends the pipeline.
func Start(ctx context.Context, cfg Config) (_ *Pipeline, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		started:   time.Now(),
		cfg:       cfg,
		logDir:    filepath.Join(cfg.Dir, "logs"),
		failed:    make(chan error, 1),
		processed: map[string]*processedCounter{},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Stop())
		}
	}()
	if err := p.clearLogs(); err != nil {
		return nil, err
	}
	binDir := filepath.Join(cfg.Dir, "bin")
	if p.producerBin, err = buildService(ctx, binDir, "producer", cfg.BuildOutput); err != nil {
		return nil, err
	}
	if p.consumerBin, err = buildService(ctx, binDir, "consumer", cfg.BuildOutput); err != nil {
		return nil, err
	}
	if err := p.startEmulators(ctx); err != nil {
		return nil, err
	}
	if err := p.startAutoscaler(); err != nil {
		return nil, err
	}
	if err := p.startDashboard(); err != nil {
		return nil, err
	}
	if err := p.startProducer(ctx); err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Consumers; i++ {
		if err := p.StartConsumer(fmt.Sprintf("consumer-%d", i)); err != nil {
			return nil, err
		}
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	p.stopLoops, p.loopsDone = stopLoops, make(chan struct{})
	go p.runLoops(loopCtx)
	return p, nil
}

// clearLogs creates the log folder and empties it: each run starts with empty logs (a restarted service appends to
// its own).
func (p *Pipeline) clearLogs() error {
	if err := os.MkdirAll(p.logDir, 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(p.logDir, "*.log"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("clear old log: %w", err)
		}
	}
	return nil
}

// startEmulators starts the emulators and creates what the services expect to find: the stream, the lease table
// and, for fan-out, the registered stream consumer and the proxy that adds kinesis-local's missing initial-response.
func (p *Pipeline) startEmulators(ctx context.Context) error {
	// The emulators write to their log through this process until they stop, so it stays open until Stop.
	var err error
	if p.emuLog, err = os.Create(filepath.Join(p.logDir, "emulators.log")); err != nil {
		return fmt.Errorf("emulator log: %w", err)
	}
	if p.emu, err = emulator.Start(ctx, emulator.Options{Kinesis: true, DynamoDB: true, CloudWatch: true,
		S3: p.cfg.Sink == SinkS3, Output: p.emuLog}); err != nil {
		return err
	}
	if err := p.createLakeBucket(ctx); err != nil {
		return err
	}
	p.kinesis = p.emu.KinesisClient()
	if err := emulator.CreateStream(ctx, p.kinesis, p.cfg.Stream, p.cfg.Shards); err != nil {
		return err
	}
	leases, err := kcl.NewLeaseTable(p.emu.DynamoDBClient(), ApplicationName)
	if err != nil {
		return err
	}
	if err := leases.CreateIfMissing(ctx); err != nil {
		return err
	}
	p.consumerKinesisEndpoint = p.emu.KinesisEndpoint
	if p.cfg.ReadMode != ReadModeFanOut {
		return nil
	}
	if p.consumerARN, err = emulator.RegisterStreamConsumer(ctx, p.kinesis, p.cfg.Stream, ApplicationName); err != nil {
		return err
	}
	if p.proxy, err = emulator.StartFanOutProxy(p.emu.KinesisEndpoint); err != nil {
		return err
	}
	p.consumerKinesisEndpoint = p.proxy.URL
	return nil
}

// startDashboard serves the local dashboard on 127.0.0.1 (Config.DashboardPort), unless it is off.
func (p *Pipeline) startDashboard() error {
	if p.cfg.DashboardPort < 0 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.cfg.DashboardPort)))
	if err != nil {
		return fmt.Errorf("dashboard: %w (choose another port with -dashboard-port)", err)
	}
	p.dashboard = &http.Server{Handler: p.DashboardHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.dashboard.Serve(ln) }()
	return nil
}

// DashboardURL is the local dashboard's address, or "" when it is off.
func (p *Pipeline) DashboardURL() string {
	if p.cfg.DashboardPort < 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", p.cfg.DashboardPort)
}

// startAutoscaler prepares the autoscaler the run loop invokes every minute, and the publisher of the stream
// metrics it reads (kinesis-local publishes none).
func (p *Pipeline) startAutoscaler() error {
	cw := p.emu.CloudWatchClient()
	p.publisher = &streamMetricsPublisher{stream: p.cfg.Stream, cw: cw, tail: lineTail{path: p.logPath("producer")}}
	var err error
	if p.scalerLog, err = os.Create(p.logPath("autoscaler")); err != nil {
		return fmt.Errorf("autoscaler log: %w", err)
	}
	p.scaler, err = scaler.New(scaler.Config{StreamName: p.cfg.Stream, Policy: p.cfg.Policy}, p.kinesis, cw,
		telemetry.NewLogger(p.scalerLog, slog.LevelInfo), nil)
	return err
}

// runLoops publishes the stream metrics and runs the autoscaler on its timer until ctx is done.
func (p *Pipeline) runLoops(ctx context.Context) {
	defer close(p.loopsDone)
	publish := time.NewTicker(publishInterval)
	defer publish.Stop()
	var autoscale <-chan time.Time
	if p.cfg.AutoscaleInterval > 0 {
		t := time.NewTicker(p.cfg.AutoscaleInterval)
		defer t.Stop()
		autoscale = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-publish.C:
			if err := p.publisher.publish(ctx); err != nil && ctx.Err() == nil {
				p.noteScaling("metrics not published: " + err.Error())
			}
		case now := <-autoscale:
			if _, err := p.Autoscale(ctx, now, "schedule"); err != nil && ctx.Err() == nil {
				p.noteScaling("autoscaler failed: " + err.Error())
			}
		}
	}
}

// Autoscale publishes the stream metrics not yet published, then makes one autoscaler decision at time now, as
// the Lambda does on each invocation; trigger is logged with the decision. The decision is written to the
// autoscaler's log.
func (p *Pipeline) Autoscale(ctx context.Context, now time.Time, trigger string) (scaler.Outcome, error) {
	if err := p.publisher.publish(ctx); err != nil {
		return scaler.Outcome{}, err
	}
	out, err := p.scaler.Run(ctx, now, trigger)
	if err != nil {
		return out, err
	}
	switch {
	case out.Executed:
		p.noteScaling(fmt.Sprintf("%s %d→%d at %s", out.Action, out.CurrentShardCount, out.TargetShardCount, now.Format(time.TimeOnly)))
	case out.Action != policy.ActionNone:
		p.noteScaling(fmt.Sprintf("%s not carried out: %s", out.Action, out.Skipped))
	}
	return out, nil
}

// PublishMetrics publishes the stream metrics of the producer's EMF lines written so far (the pipeline also does so
// every few seconds).
func (p *Pipeline) PublishMetrics(ctx context.Context) error {
	return p.publisher.publish(ctx)
}

func (p *Pipeline) noteScaling(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastScaling = s
}

// localAWSEnv is the environment of a service run against the emulators: dummy credentials and the emulators'
// region, so nothing from the user's AWS profile is used or needed.
func localAWSEnv(vars ...string) []string {
	env := append(os.Environ(),
		"AWS_REGION="+emulator.Region,
		"AWS_ACCESS_KEY_ID=local",
		"AWS_SECRET_ACCESS_KEY=local",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
	)
	return append(env, vars...)
}

func (p *Pipeline) logPath(name string) string { return filepath.Join(p.logDir, name+".log") }

func (p *Pipeline) startProducer(ctx context.Context) error {
	s, err := startService("producer", p.producerBin, nil, localAWSEnv(
		producersettings.EnvStreamName+"="+p.cfg.Stream,
		producersettings.EnvKinesisEndpoint+"="+p.emu.KinesisEndpoint,
		producersettings.EnvListenHost+"=127.0.0.1",
		producersettings.EnvPort+"="+strconv.Itoa(p.cfg.Port),
		producersettings.EnvMetricsInterval+"="+p.cfg.MetricsInterval.String(),
	), p.logPath("producer"), p.failed)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.producer = s
	p.mu.Unlock()
	return waitHealthy(ctx, p.ProducerURL()+ingest.PathHealthcheck, s)
}

// RestartProducer stops the producer with SIGTERM, as ECS does on a deployment (it drains, flushes its buffer and
// exits), and starts it again on the same port; it returns once the new process serves. Requests sent meanwhile
// fail to connect or are refused with 503.
func (p *Pipeline) RestartProducer(ctx context.Context) error {
	p.mu.Lock()
	old := p.producer
	p.mu.Unlock()
	if err := old.stop(stopTimeout); err != nil {
		return err
	}
	return p.startProducer(ctx)
}

// StartConsumer starts a consumer worker with the given worker id; its output goes to logs/<name>.log.
func (p *Pipeline) StartConsumer(name string) error {
	env := []string{
		consumersettings.EnvStreamName + "=" + p.cfg.Stream,
		consumersettings.EnvApplicationName + "=" + ApplicationName,
		consumersettings.EnvReadMode + "=" + p.cfg.ReadMode,
		consumersettings.EnvKinesisEndpoint + "=" + p.consumerKinesisEndpoint,
		consumersettings.EnvDynamoDBEndpoint + "=" + p.emu.DynamoDBEndpoint,
		consumersettings.EnvWorkerID + "=" + name,
		consumersettings.EnvMetricsInterval + "=" + p.cfg.MetricsInterval.String(),
	}
	if p.consumerARN != "" {
		env = append(env, consumersettings.EnvConsumerARN+"="+p.consumerARN)
	}
	if p.cfg.FailoverTime > 0 {
		env = append(env, consumersettings.EnvFailoverTime+"="+p.cfg.FailoverTime.String())
	}
	if p.cfg.CheckpointInterval > 0 {
		env = append(env, consumersettings.EnvCheckpointInterval+"="+p.cfg.CheckpointInterval.String())
	}
	if p.cfg.MultiLangCommand != "" {
		env = append(env, consumersettings.EnvProcessor+"="+consumersettings.ProcessorMultiLang,
			consumersettings.EnvMultiLangCommand+"="+p.cfg.MultiLangCommand)
	} else if p.LakeEnabled() {
		env = append(env, p.lakeEnv(name)...)
	}
	var args []string
	if p.cfg.PropertiesFile != "" {
		args = []string{"--properties-file", p.cfg.PropertiesFile}
	}
	s, err := startService(name, p.consumerBin, args, localAWSEnv(env...), p.logPath(name), p.failed)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consumers = append(p.consumers, s)
	if p.processed[name] == nil {
		p.processed[name] = &processedCounter{tail: lineTail{path: p.logPath(name)}}
	}
	return nil
}

// KillConsumer ends the running worker name with SIGKILL, as a crash would: it neither checkpoints nor releases
// its leases, so the other workers take its shards after the failover time.
func (p *Pipeline) KillConsumer(name string) error {
	p.mu.Lock()
	var target *service
	for _, s := range p.consumers {
		if s.name == name && s.running() {
			target = s
		}
	}
	p.mu.Unlock()
	if target == nil {
		return fmt.Errorf("no running consumer %q", name)
	}
	return target.kill()
}

// Failed delivers an error when a service exits without the pipeline having stopped or killed it.
func (p *Pipeline) Failed() <-chan error { return p.failed }

// ProducerURL is the producer's base URL, such as http://127.0.0.1:8080.
func (p *Pipeline) ProducerURL() string { return "http://127.0.0.1:" + strconv.Itoa(p.cfg.Port) }

// Emulators are the running emulators (for their endpoints and clients).
func (p *Pipeline) Emulators() *emulator.Emulators { return p.emu }

// Config is the pipeline's configuration with its defaults filled in.
func (p *Pipeline) Config() Config { return p.cfg }

// LogDir holds one log per process: producer.log, consumer-N.log (one JSON line per processed record, next to
// the worker's logs and EMF lines), autoscaler.log and emulators.log.
func (p *Pipeline) LogDir() string { return p.logDir }

// ConsumerLogs returns the log paths of every consumer worker started so far.
func (p *Pipeline) ConsumerLogs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var paths []string
	for _, s := range p.consumers {
		if path := p.logPath(s.name); !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	return paths
}

// PIDs returns the process ids of every process the pipeline started that may still run: emulators and services.
func (p *Pipeline) PIDs() []int {
	var pids []int
	if p.emu != nil {
		pids = append(pids, p.emu.PIDs()...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.producer != nil {
		pids = append(pids, p.producer.pid())
	}
	for _, s := range p.consumers {
		pids = append(pids, s.pid())
	}
	return pids
}

// Stop stops the consumers, then the producer (it flushes its buffer into the stream), the timers, the fan-out proxy
// and the emulators, every process by its PID. It is safe to call more than once.
func (p *Pipeline) Stop() error {
	p.stopOnce.Do(func() {
		var errs []error
		p.mu.Lock()
		services := slices.Clone(p.consumers)
		if p.producer != nil {
			services = append(services, p.producer)
		}
		p.mu.Unlock()
		var wg sync.WaitGroup
		stopErrs := make([]error, len(services))
		for i, s := range services {
			wg.Go(func() { stopErrs[i] = s.stop(stopTimeout) })
		}
		wg.Wait()
		errs = append(errs, stopErrs...)
		if p.dashboard != nil {
			errs = append(errs, p.dashboard.Close())
		}
		if p.stopLoops != nil {
			p.stopLoops()
			<-p.loopsDone
		}
		if p.scalerLog != nil {
			errs = append(errs, p.scalerLog.Close())
		}
		if p.proxy != nil {
			errs = append(errs, p.proxy.Close())
		}
		if p.emu != nil {
			errs = append(errs, p.emu.Stop())
		}
		if p.emuLog != nil {
			errs = append(errs, p.emuLog.Close())
		}
		p.stopErr = errors.Join(errs...)
	})
	return p.stopErr
}

// waitHealthy polls url until it answers 200, the service exits, or a minute passes.
func waitHealthy(ctx context.Context, url string, s *service) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become healthy at %s: %w", s.name, url, ctx.Err())
		case <-s.done:
			return fmt.Errorf("%s exited while starting (%v); see its log", s.name, s.exitErr())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
