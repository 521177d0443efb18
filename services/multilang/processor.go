package multilang

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/smithy-go"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Defaults of Config.
const (
	// DefaultTimeout is how long the host waits for each message of the child: a record processor that answers no
	// action within it is taken for hung. The Java daemon waits forever unless timeoutInSeconds is set.
	DefaultTimeout = time.Minute
	// DefaultProtocolVersion is the protocol of the KCL 2.x and 3.x daemons (leaseLost and shardEnded).
	DefaultProtocolVersion = 2
)

// Metric names the host emits (EMF, through Config.Metrics).
const (
	// MetricChildrenStarted counts record processor processes started (one per shard taken, and one per restart).
	MetricChildrenStarted = "MultiLangChildrenStarted"
	// MetricChildFailures counts record processors that exited, hung or broke the protocol.
	MetricChildFailures = "MultiLangChildFailures"
	// MetricProcessRecordsTime observes how long a record processor took to answer processRecords, in milliseconds.
	MetricProcessRecordsTime = "MultiLangProcessRecordsTime"
)

// Config configures the record processors of a worker. The zero value of every optional field means its default.
type Config struct {
	// Command is the record processor's program and its arguments (a properties file's executableName, split at
	// spaces). Required.
	Command []string
	// Dir is the working directory of the record processors. Default: the consumer's.
	Dir string
	// Env holds KEY=VALUE settings added to the consumer's environment for the record processors.
	Env []string
	// Timeout is how long the host waits for each message of a record processor (a checkpoint request or the
	// status that ends an action) before it kills it as hung (a properties file's timeoutInSeconds). Default:
	// DefaultTimeout.
	Timeout time.Duration
	// ProtocolVersion is 2 (leaseLost and shardEnded, as the KCL 2.x and 3.x daemons send) or 1 (shutdown with
	// reason ZOMBIE or TERMINATE, as the KCL 1.x daemon sends, for record processors written against it).
	// Record processor libraries that speak version 2 on the wire (amazon_kclpy 2+, aws-kcl) translate it for
	// processors written against version 1 themselves. Default: DefaultProtocolVersion.
	ProtocolVersion int
	// Logger receives the host's logs and each line the record processors write on stderr. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the metrics named Metric... (a *telemetry.Metrics writes them as EMF). Default: none.
	Metrics telemetry.Recorder
}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return cfg, errors.New("multilang: Command is required: the record processor's program")
	}
	if cfg.Timeout < 0 {
		return cfg, fmt.Errorf("multilang: Timeout %v: want > 0 (or 0 for the default %v)", cfg.Timeout, DefaultTimeout)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ProtocolVersion = cmp.Or(cfg.ProtocolVersion, DefaultProtocolVersion)
	if cfg.ProtocolVersion != 1 && cfg.ProtocolVersion != 2 {
		return cfg, fmt.Errorf("multilang: ProtocolVersion %d: want 1 or 2", cfg.ProtocolVersion)
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.Metrics = cmp.Or(cfg.Metrics, telemetry.Discard)
	return cfg, nil
}

// NewProcessorFunc validates cfg and returns the function a kcl.Config's NewProcessor takes: each call makes a
// Processor that runs one child process for one shard.
func NewProcessorFunc(cfg Config) (func() kcl.Processor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return func() kcl.Processor { return &Processor{cfg: cfg, log: cfg.Logger} }, nil
}

// Processor is a kcl.Processor that forwards one shard's lifecycle to a record processor child process over the
// MultiLang protocol. When the child exits, hangs past Config.Timeout or breaks the protocol, it is killed and the
// call fails with kcl.ErrRestartFromCheckpoint: the worker starts a new Processor, and so a new child, that is
// given every record after the shard's last checkpoint again. Nothing is skipped.
type Processor struct {
	cfg   Config
	log   *slog.Logger
	child *child
	w     messageWriter
}

// Initialize implements kcl.Processor: it starts the child and sends it initialize.
func (p *Processor) Initialize(ctx context.Context, in kcl.InitializeInput) error {
	p.log = p.cfg.Logger.With(telemetry.LogKeyShardID, in.ShardID)
	c, err := startChild(p.cfg.Command, p.cfg.Dir, p.cfg.Env, p.log)
	if err != nil {
		p.count(MetricChildFailures)
		p.log.Error("record processor could not start", telemetry.LogKeyError, err.Error())
		return fmt.Errorf("%w: %w", kcl.ErrRestartFromCheckpoint, err)
	}
	p.child = c
	p.count(MetricChildrenStarted)
	p.log.Info("record processor started", "pid", c.cmd.Process.Pid, "command", p.cfg.Command,
		"checkpoint", in.Checkpoint, "sub_sequence_number", in.CheckpointSubSequenceNumber)
	return p.act(ctx, actionInitialize, p.w.initialize(in), nil)
}

// ProcessRecords implements kcl.Processor: it sends processRecords and serves the child's checkpoints until its
// status.
func (p *Processor) ProcessRecords(ctx context.Context, in kcl.ProcessRecordsInput) error {
	start := time.Now()
	if err := p.act(ctx, actionProcessRecords, p.w.processRecords(in), in.Checkpointer); err != nil {
		return err
	}
	p.cfg.Metrics.Observe(MetricProcessRecordsTime, telemetry.UnitMilliseconds, float64(time.Since(start).Microseconds())/1000)
	return nil
}

// LeaseLost implements kcl.Processor: it tells the child (leaseLost, or shutdown ZOMBIE in version 1), which may
// no longer checkpoint, and ends it.
func (p *Processor) LeaseLost(ctx context.Context) {
	if p.child == nil || p.child.done() {
		return
	}
	action, msg := actionLeaseLost, p.w.action(actionLeaseLost)
	if p.cfg.ProtocolVersion == 1 {
		action, msg = actionShutdown, p.w.shutdown(reasonZombie)
	}
	if err := p.act(ctx, action, msg, nil); err != nil {
		return // act killed it and said why
	}
	p.stopChild()
}

// ShardEnded implements kcl.Processor: it tells the child (shardEnded, or shutdown TERMINATE in version 1), which
// must checkpoint, and ends it. A child that did not checkpoint makes the worker restart the shard from its last
// checkpoint.
func (p *Processor) ShardEnded(ctx context.Context, in kcl.ShardEndedInput) error {
	if p.child == nil || p.child.done() {
		return fmt.Errorf("shard ended: %w: the record processor is no longer running", kcl.ErrRestartFromCheckpoint)
	}
	action, msg := actionShardEnded, p.w.action(actionShardEnded)
	if p.cfg.ProtocolVersion == 1 {
		action, msg = actionShutdown, p.w.shutdown(reasonTerminate)
	}
	if err := p.act(ctx, action, msg, in.Checkpointer); err != nil {
		return err
	}
	p.stopChild()
	return nil
}

// ShutdownRequested implements kcl.Processor: the child may checkpoint (shutdownRequested), then, as the Java KCL
// does once the lease is given up, it is told the lease is lost and ends.
func (p *Processor) ShutdownRequested(ctx context.Context, in kcl.ShutdownRequestedInput) error {
	if p.child == nil || p.child.done() {
		return nil
	}
	if err := p.act(ctx, actionShutdownRequested, p.w.action(actionShutdownRequested), in.Checkpointer); err != nil {
		return err
	}
	p.LeaseLost(ctx)
	return nil
}

// Close implements io.Closer: the worker calls it once the shard's processing ended in any way, so that no child
// outlives its shard (after an abrupt stop or a restart it is killed).
func (p *Processor) Close() error {
	if p.child == nil || p.child.done() {
		return nil
	}
	p.child.kill("the shard's processing ended")
	<-p.child.exited
	return nil
}

// act sends msg and serves the child's checkpoint requests until it answers with the status for action. Every
// wait for a message is bounded by the timeout. On any failure the child is killed and the error wraps
// kcl.ErrRestartFromCheckpoint.
func (p *Processor) act(ctx context.Context, action string, msg []byte, cp kcl.Checkpointer) error {
	c := p.child
	if c == nil || c.done() {
		return p.fail(action, errors.New("the record processor is not running"))
	}
	hung := time.AfterFunc(p.cfg.Timeout, func() {
		c.kill(fmt.Sprintf("record processor did not answer %s within %v (the timeout); killed", action, p.cfg.Timeout))
	})
	defer hung.Stop()
	if err := c.send(msg); err != nil {
		return p.fail(action, err)
	}
	for {
		m, err := c.next()
		if err != nil {
			return p.fail(action, err)
		}
		if m.Action == actionStatus {
			if m.ResponseFor != action {
				return p.fail(action, fmt.Errorf("%w: status for %q while %q was running", errProtocol, m.ResponseFor, action))
			}
			return nil
		}
		// A checkpoint: the DynamoDB write is not the child's time.
		if !hung.Stop() {
			return p.fail(action, c.failure(errors.New("record processor killed")))
		}
		answer := p.w.checkpointAnswer(m, p.checkpoint(ctx, m, cp))
		hung.Reset(p.cfg.Timeout)
		if err := c.send(answer); err != nil {
			return p.fail(action, err)
		}
	}
}

// checkpoint carries out the child's checkpoint request as the Java daemon does: no sequence number means every
// record delivered so far, a sequence number without a sub-sequence number means sub-sequence 0. It returns the
// Java exception name the answer carries, empty on success.
func (p *Processor) checkpoint(ctx context.Context, req childMessage, cp kcl.Checkpointer) string {
	if cp == nil {
		p.log.Warn("record processor asked to checkpoint where none is possible (initialize or lease lost)")
		return errorInvalidState
	}
	var err error
	if req.SequenceNumber == nil {
		err = cp.Checkpoint(ctx)
	} else {
		sub := int64(0)
		if req.SubSequenceNumber != nil {
			sub = *req.SubSequenceNumber
		}
		err = cp.CheckpointAt(ctx, *req.SequenceNumber, sub)
	}
	if err == nil {
		return ""
	}
	name := javaExceptionName(err)
	p.log.Warn("record processor's checkpoint refused", "error_name", name, telemetry.LogKeyError, err.Error())
	return name
}

// javaExceptionName maps a checkpoint error to the Java checkpointer's exception for it.
func javaExceptionName(err error) string {
	var api smithy.APIError
	switch {
	case errors.Is(err, kcl.ErrLeaseLost):
		return errorShutdown
	case errors.Is(err, kcl.ErrCheckpointOutOfRange):
		return errorIllegalArgument
	case errors.As(err, &api) && (api.ErrorCode() == "ProvisionedThroughputExceededException" ||
		api.ErrorCode() == "ThrottlingException" || api.ErrorCode() == "RequestLimitExceeded"):
		return errorThrottling
	default:
		return errorDependency
	}
}

// fail kills the child after a failure of action, says so in one log line, and returns the error that makes the
// worker restart the shard from its last checkpoint.
func (p *Processor) fail(action string, err error) error {
	p.count(MetricChildFailures)
	if p.child != nil {
		p.child.kill("record processor failed")
		<-p.child.exited
	}
	p.log.Error("record processor failed; the shard restarts from its last checkpoint with a new one",
		"action", action, telemetry.LogKeyError, err.Error())
	return fmt.Errorf("%s: %w: %w", action, kcl.ErrRestartFromCheckpoint, err)
}

// stopChild ends a child that answered its last action, and logs how it exited.
func (p *Processor) stopChild() {
	if err := p.child.stop(p.cfg.Timeout); err != nil {
		p.log.Warn("record processor exited with an error after its last action", telemetry.LogKeyError, err.Error())
		return
	}
	p.log.Info("record processor exited")
}

func (p *Processor) count(name string) {
	p.cfg.Metrics.Add(name, telemetry.UnitCount, 1)
}
