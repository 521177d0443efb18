package kcl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/streamproc/streamproc/services/telemetry"
)

// errGaveUp means the processor failed MaxProcessAttempts times in a row on the same call.
var errGaveUp = errors.New("processor kept failing")

// shardConsumer is the per-shard loop: it reads one held shard and drives one Processor through its lifecycle,
// Initialize, then ProcessRecords for each batch, then exactly one of ShardEnded (the shard was read to its end),
// ShutdownRequested (graceful stop) or LeaseLost (the lease was lost or given up). One runs per held lease, in its
// own goroutine (see Worker.takeOne).
//
// Every processor call goes through Worker.callProcessor, which retries errors and panics and gives up after
// Config.MaxProcessAttempts. What happens to the records is the Processor's business: a new one (a MultiLang
// child-process host, an S3 sink) comes from Config.NewProcessor and needs no change here.
type shardConsumer struct {
	w       *Worker
	h       *heldLease
	lease   Lease // as taken: the shard and the checkpoint reading starts from
	proc    Processor
	cp      *checkpointer
	log     *slog.Logger
	reader  shardReader
	builder *recordBuilder
	// afterSeq, afterSub is the position the next batch starts after: the last record delivered, or at first the
	// checkpoint inside the aggregate that is read again. Empty: the reader's first record.
	afterSeq string
	afterSub int64
	// restarts counts the restarts from the checkpoint (ErrRestartFromCheckpoint) since the checkpoint last moved.
	restarts int
}

// consume runs the shard consumer of a lease this worker took, until the shard ends, the lease is lost or given up,
// the worker shuts down (h.stopReading), or runCtx is cancelled (abrupt stop: nothing more is called). shardCtx, a
// child of runCtx, ends when the lease is lost.
func (w *Worker) consume(runCtx, shardCtx context.Context, h *heldLease) {
	c := w.newShardConsumer(h)
	for {
		err := c.run(runCtx, shardCtx)
		if errors.Is(err, ErrRestartFromCheckpoint) && shardCtx.Err() == nil {
			if err = c.restart(shardCtx, err); err == nil {
				continue
			}
		}
		if err != nil {
			c.endEarly(runCtx, err)
		}
		c.closeProcessor()
		return
	}
}

// restart replaces a processor that lost what it was given (ErrRestartFromCheckpoint, the cause) by a new one that
// starts at the lease's checkpoint and is given every record after it again. It fails with errGaveUp after
// MaxProcessAttempts restarts without the checkpoint moving, or with ctx's error.
func (c *shardConsumer) restart(ctx context.Context, cause error) error {
	c.h.mu.Lock()
	l := c.h.lease
	c.h.mu.Unlock()
	if l.Checkpoint != c.lease.Checkpoint || l.CheckpointSubSequenceNumber != c.lease.CheckpointSubSequenceNumber {
		c.restarts = 0 // progress since the last start
	}
	c.restarts++
	c.w.metrics.count(MetricProcessingErrors, telemetry.UnitCount, 1)
	if c.restarts >= c.w.cfg.MaxProcessAttempts {
		return fmt.Errorf("%w after %d restarts at checkpoint %s/%d: %w", errGaveUp, c.restarts, l.Checkpoint,
			l.CheckpointSubSequenceNumber, cause)
	}
	c.closeProcessor()
	c.proc = nil // until the backoff is over: a lease lost meanwhile has no processor to tell
	c.log.Warn("processor restarts from the last checkpoint", "attempt", c.restarts, "checkpoint", l.Checkpoint,
		"sub_sequence_number", l.CheckpointSubSequenceNumber, telemetry.LogKeyError, cause.Error())
	if !sleepCtx(ctx, c.w.backoff(c.restarts)) {
		return ctx.Err()
	}
	c.lease = l
	c.proc = c.w.cfg.NewProcessor()
	c.cp = &checkpointer{w: c.w, h: c.h}
	c.afterSeq, c.afterSub = "", 0
	return nil
}

// closeProcessor closes a processor that implements io.Closer, once its shard's processing ended.
func (c *shardConsumer) closeProcessor() {
	if c.proc == nil {
		return
	}
	if closer, ok := c.proc.(io.Closer); ok {
		if err := closer.Close(); err != nil {
			c.log.Warn("close processor failed", telemetry.LogKeyError, err.Error())
		}
	}
}

func (w *Worker) newShardConsumer(h *heldLease) *shardConsumer {
	h.mu.Lock()
	l := h.lease
	h.mu.Unlock()
	return &shardConsumer{
		w:       w,
		h:       h,
		lease:   l,
		log:     w.log.With(telemetry.LogKeyShardID, l.Key),
		proc:    w.cfg.NewProcessor(),
		cp:      &checkpointer{w: w, h: h},
		builder: &recordBuilder{shardID: l.Key, rng: newHashRange(l.StartingHashKey, l.EndingHashKey)},
	}
}

// run initializes the processor, processes the shard's batches until the shard ends or the worker shuts down, and
// ends the matching way (shardEnded or shutdown). An error means that the consumer was cut short: see endEarly.
func (c *shardConsumer) run(runCtx, shardCtx context.Context) error {
	if err := c.initialize(shardCtx); err != nil {
		return err
	}
	c.openReader()
	defer c.reader.close()
	last, err := c.processBatches(shardCtx)
	switch {
	case err != nil:
		return err
	case last.ended:
		return c.shardEnded(shardCtx, last.children)
	default:
		return c.shutdown(runCtx, shardCtx)
	}
}

// initialize tells the processor its shard and the checkpoint reading starts from.
func (c *shardConsumer) initialize(ctx context.Context) error {
	return c.w.callProcessor(ctx, c.log, "initialize", func(ctx context.Context) error {
		return c.proc.Initialize(ctx, InitializeInput{
			ShardID: c.lease.Key, Checkpoint: c.lease.Checkpoint, CheckpointSubSequenceNumber: c.lease.CheckpointSubSequenceNumber,
		})
	})
}

// openReader opens the shard at the lease's checkpoint, by fan-out or polling (Config.ReadMode). It reads nothing.
func (c *shardConsumer) openReader() {
	cfg, l := c.w.cfg, c.lease
	start := positionFromLease(l, cfg.InitialTimestamp)
	if start.seq != "" {
		// The checkpointed aggregate is read again: its user records up to the checkpoint are skipped.
		c.afterSeq, c.afterSub = l.Checkpoint, l.CheckpointSubSequenceNumber
	}
	if cfg.ReadMode == ReadModeFanOut {
		c.reader = &fanOutReader{api: c.w.kinesis, stream: cfg.StreamName, shardID: l.Key, consumerARN: cfg.ConsumerARN,
			start: start, resubscribeAfter: cfg.ResubscribeInterval, probeInterval: cfg.FanOutEndProbeInterval}
		return
	}
	c.reader = &pollingReader{api: c.w.kinesis, stream: cfg.StreamName, shardID: l.Key, limit: cfg.MaxRecordsPerCall,
		idleInterval: cfg.PollIdleInterval, start: start}
}

// processBatches reads the shard and processes batch after batch until the shard ends (it returns the read that
// said so) or the worker shuts down (it returns a read that did not end the shard). Reads stop at once on shutdown;
// the processing of the batch in hand does not.
func (c *shardConsumer) processBatches(shardCtx context.Context) (readResult, error) {
	readCtx, cancelRead := context.WithCancel(shardCtx)
	defer cancelRead()
	go func() {
		select {
		case <-c.h.stopReading:
			cancelRead()
		case <-readCtx.Done():
		}
	}()
	for {
		res, reading, err := c.read(shardCtx, readCtx)
		if err != nil || !reading {
			return readResult{}, err
		}
		if err := c.processBatch(shardCtx, res); err != nil {
			return readResult{}, err
		}
		if res.ended {
			return res, nil
		}
	}
}

// read returns the shard's next read, retrying failed reads with backoff. It returns reading false once the worker
// shuts down, or shardCtx's error when the lease is lost or the worker stops abruptly.
func (c *shardConsumer) read(shardCtx, readCtx context.Context) (readResult, bool, error) {
	for failures := 1; !isClosed(c.h.stopReading); failures++ {
		res, err := c.reader.next(readCtx)
		if err == nil {
			return res, true, nil
		}
		if shardCtx.Err() != nil {
			return readResult{}, false, shardCtx.Err()
		}
		if isClosed(c.h.stopReading) {
			break
		}
		c.log.Warn("read failed", telemetry.LogKeyError, err.Error(), "attempt", failures)
		sleepCtx(readCtx, c.w.backoff(failures))
	}
	return readResult{}, false, nil
}

// processBatch turns one read into user records (deaggregated, after afterSeq/afterSub) and gives them to the
// processor, with callProcessor's retries. A batch without records is given only with Config.ProcessEmptyBatches,
// and not at the shard's end.
func (c *shardConsumer) processBatch(ctx context.Context, res readResult) error {
	records, st := c.builder.build(res.records, c.afterSeq, c.afterSub, c.reportCorrupt)
	c.w.metrics.count(MetricRecordsOutsideShardRange, telemetry.UnitCount, float64(st.outsideRange))
	c.w.metrics.count(MetricProcessingErrors, telemetry.UnitCount, float64(st.corrupt))
	if len(res.records) > 0 || res.millisBehindLatest > 0 {
		c.w.metrics.observe(MetricMillisBehindLatest, telemetry.UnitMilliseconds, float64(res.millisBehindLatest))
	}
	if len(records) == 0 {
		if !c.w.cfg.ProcessEmptyBatches || res.ended {
			return nil
		}
		return c.processRecords(ctx, ProcessRecordsInput{MillisBehindLatest: res.millisBehindLatest, Checkpointer: c.cp})
	}
	last := records[len(records)-1]
	c.cp.delivered(last.SequenceNumber, last.SubSequenceNumber)
	err := c.processRecords(ctx, ProcessRecordsInput{Records: records, MillisBehindLatest: res.millisBehindLatest, Checkpointer: c.cp})
	if err != nil {
		return err
	}
	c.w.metrics.count(MetricRecordsProcessed, telemetry.UnitCount, float64(len(records)))
	c.w.metrics.count(MetricBytesProcessed, telemetry.UnitBytes, float64(st.bytes))
	c.h.meter.add(st.bytes)
	c.afterSeq, c.afterSub = last.SequenceNumber, last.SubSequenceNumber
	return nil
}

func (c *shardConsumer) processRecords(ctx context.Context, in ProcessRecordsInput) error {
	return c.w.callProcessor(ctx, c.log, "process records", func(ctx context.Context) error {
		return c.proc.ProcessRecords(ctx, in)
	})
}

func (c *shardConsumer) reportCorrupt(r corruptRecord) {
	c.log.Error("corrupt aggregated record delivered undecoded", "sequence_number", r.sequenceNumber, telemetry.LogKeyError, r.err.Error())
}

// shardEnded ends the consumer of a shard read to its end: the processor checkpoints SHARD_END in ShardEnded, which
// unblocks the shard's children. The lease is then no longer renewed; it stays in the table, at SHARD_END, until the
// clean-up pass deletes it. children are the shards that continue this one, when the last read named them.
func (c *shardConsumer) shardEnded(ctx context.Context, children []string) error {
	if len(children) == 0 {
		children = c.listChildren(ctx)
	}
	c.cp.shardEnded(children)
	err := c.w.callProcessor(ctx, c.log, "shard ended", func(ctx context.Context) error {
		if err := c.proc.ShardEnded(ctx, ShardEndedInput{Checkpointer: c.cp}); err != nil {
			return err
		}
		c.h.mu.Lock()
		finished := c.h.lease.Finished()
		c.h.mu.Unlock()
		if !finished {
			return errors.New("processor returned from ShardEnded without checkpointing")
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.h.mu.Lock()
	c.h.released = true // finished: no more renewals; the lease stays at SHARD_END
	c.h.expiry.Stop()
	c.h.mu.Unlock()
	c.log.Info("shard ended", "children", children)
	c.w.requestSync()
	return nil
}

// listChildren lists the shards that continue this one, retrying with backoff until ListShards succeeds or ctx ends.
func (c *shardConsumer) listChildren(ctx context.Context) []string {
	for attempt := 1; ; attempt++ {
		children, err := c.w.childrenOf(ctx, c.lease.Key)
		if err == nil || ctx.Err() != nil {
			return children
		}
		c.log.Warn("list child shards failed", telemetry.LogKeyError, err.Error())
		sleepCtx(ctx, c.w.backoff(attempt))
	}
}

// shutdown ends the consumer gracefully, after reads stopped and the batch in hand was processed: the processor
// checkpoints in ShutdownRequested, then the lease is released so that another worker takes it at once, or, when
// it is being handed over, given to its new owner. A processor that fails to shut down has the lease released at its
// last checkpoint; only a lost lease or an abrupt stop cut the shutdown short (the error, for endEarly).
//
// Worker.Shutdown ends every consumer this way, and so does the graceful hand-off of one lease to another worker
// (both through heldLease.stopConsumer).
func (c *shardConsumer) shutdown(runCtx, shardCtx context.Context) error {
	err := c.w.callProcessor(shardCtx, c.log, "shutdown requested", func(ctx context.Context) error {
		return c.proc.ShutdownRequested(ctx, ShutdownRequestedInput{Checkpointer: c.cp})
	})
	if err != nil && (runCtx.Err() != nil || errors.Is(err, ErrLeaseLost) || shardCtx.Err() != nil) {
		return err
	}
	if err != nil {
		c.log.Error("processor failed to shut down; releasing the lease at its last checkpoint", telemetry.LogKeyError, err.Error())
	}
	if c.w.release(runCtx, c.h) {
		c.log.Info("lease handed over")
	} else {
		c.log.Info("lease released")
	}
	return nil
}

// endEarly ends a consumer that err cut short, in one of three ways:
//   - abrupt stop (runCtx cancelled): like a crash, nothing more is called, and the lease expires after FailoverTime;
//   - gave up (errGaveUp, the processor kept failing): the lease is released so that another worker retries the
//     records, this worker leaves it alone for two failover times, and the processor gets LeaseLost;
//   - lease lost (another worker took it, or it expired): the processor gets LeaseLost.
func (c *shardConsumer) endEarly(runCtx context.Context, err error) {
	switch {
	case runCtx.Err() != nil:
	case errors.Is(err, errGaveUp):
		c.w.mu.Lock()
		c.w.cooldown[c.lease.Key] = time.Now().Add(2 * c.w.cfg.FailoverTime)
		c.w.mu.Unlock()
		c.w.metrics.count(MetricLeasesLost, telemetry.UnitCount, 1)
		c.log.Error("giving the lease up so another worker retries", telemetry.LogKeyError, err.Error())
		c.w.release(runCtx, c.h)
		c.leaseLost(runCtx)
	default:
		c.leaseLost(runCtx)
	}
}

// leaseLost tells the processor, if one is running, that the lease is gone.
func (c *shardConsumer) leaseLost(ctx context.Context) {
	if c.proc != nil {
		c.proc.LeaseLost(ctx)
	}
}

// callProcessor calls fn until it succeeds, retrying errors and panics with backoff. It returns an error wrapping
// errGaveUp after MaxProcessAttempts failures, or ctx's error when the lease is lost or the worker stops abruptly.
func (w *Worker) callProcessor(ctx context.Context, log *slog.Logger, op string, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := safeCall(ctx, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrRestartFromCheckpoint) {
			return err // nothing to retry: the lease is gone, or the consumer restarts the processor
		}
		w.metrics.count(MetricProcessingErrors, telemetry.UnitCount, 1)
		log.Warn("processor failed", "call", op, "attempt", attempt, telemetry.LogKeyError, err.Error())
		if attempt >= w.cfg.MaxProcessAttempts {
			return fmt.Errorf("%s: %w after %d attempts: %w", op, errGaveUp, attempt, err)
		}
		if !sleepCtx(ctx, w.backoff(attempt)) {
			return ctx.Err()
		}
	}
}

// safeCall turns a panic of fn into an error, so a bad record never crashes the worker.
func safeCall(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("processor panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(ctx)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
