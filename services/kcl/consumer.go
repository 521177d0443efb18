package kcl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/streamproc/streamproc/services/telemetry"
)

// errGaveUp means the processor failed MaxProcessAttempts times in a row on the same call.
var errGaveUp = errors.New("processor kept failing")

// consume reads one held shard and drives its processor until the shard ends, the lease is lost or given up, the
// worker shuts down (stopReading), or runCtx is cancelled (abrupt stop: nothing more is called).
func (w *Worker) consume(runCtx, shardCtx context.Context, h *heldLease) {
	h.mu.Lock()
	l := h.lease
	h.mu.Unlock()
	log := w.log.With(telemetry.LogKeyShardID, l.Key)
	proc := w.cfg.NewProcessor()
	cp := &checkpointer{w: w, h: h}

	end := func(err error) {
		switch {
		case runCtx.Err() != nil:
			// Abrupt stop: behave like a crash.
		case errors.Is(err, errGaveUp):
			w.mu.Lock()
			w.cooldown[l.Key] = time.Now().Add(2 * w.cfg.FailoverTime)
			w.mu.Unlock()
			w.metrics.count(MetricLeasesLost, telemetry.UnitCount, 1)
			log.Error("giving the lease up so another worker retries", telemetry.LogKeyError, err.Error())
			w.release(runCtx, h)
			proc.LeaseLost(runCtx)
		default: // lost: another worker holds the lease now
			proc.LeaseLost(runCtx)
		}
	}

	err := w.callProcessor(shardCtx, log, "initialize", func(ctx context.Context) error {
		return proc.Initialize(ctx, InitializeInput{ShardID: l.Key, Checkpoint: l.Checkpoint, CheckpointSubSequenceNumber: l.CheckpointSubSequenceNumber})
	})
	if err != nil {
		end(err)
		return
	}

	var reader shardReader
	start := positionFromLease(l, w.cfg.InitialTimestamp)
	if w.cfg.ReadMode == ReadModeFanOut {
		reader = &fanOutReader{api: w.kinesis, stream: w.cfg.StreamName, shardID: l.Key, consumerARN: w.cfg.ConsumerARN,
			start: start, resubscribeAfter: w.cfg.ResubscribeInterval, probeInterval: w.cfg.FanOutEndProbeInterval}
	} else {
		reader = &pollingReader{api: w.kinesis, stream: w.cfg.StreamName, shardID: l.Key, limit: w.cfg.MaxRecordsPerCall,
			idleInterval: w.cfg.PollIdleInterval, start: start}
	}
	defer reader.close()

	// Reads stop on shutdown; processing of the batch in hand does not.
	readCtx, cancelRead := context.WithCancel(shardCtx)
	defer cancelRead()
	go func() {
		select {
		case <-h.stopReading:
			cancelRead()
		case <-readCtx.Done():
		}
	}()

	builder := &recordBuilder{shardID: l.Key, rng: newHashRange(l.StartingHashKey, l.EndingHashKey)}
	afterSeq, afterSub := "", int64(0)
	if start.seq != "" {
		afterSeq, afterSub = l.Checkpoint, l.CheckpointSubSequenceNumber
	}
	corrupt := func(c corruptRecord) {
		log.Error("corrupt aggregated record delivered undecoded", "sequence_number", c.sequenceNumber, telemetry.LogKeyError, c.err.Error())
	}
	readFailures := 0
	for {
		if isClosed(h.stopReading) {
			break
		}
		res, err := reader.next(readCtx)
		if err != nil {
			if shardCtx.Err() != nil {
				end(shardCtx.Err())
				return
			}
			if isClosed(h.stopReading) {
				break
			}
			readFailures++
			log.Warn("read failed", telemetry.LogKeyError, err.Error(), "attempt", readFailures)
			sleepCtx(readCtx, w.backoff(readFailures))
			continue
		}
		readFailures = 0
		records, st := builder.build(res.records, afterSeq, afterSub, corrupt)
		w.metrics.count(MetricRecordsOutsideShardRange, telemetry.UnitCount, float64(st.outsideRange))
		w.metrics.count(MetricProcessingErrors, telemetry.UnitCount, float64(st.corrupt))
		if len(res.records) > 0 || res.millisBehindLatest > 0 {
			w.metrics.observe(MetricMillisBehindLatest, telemetry.UnitMilliseconds, float64(res.millisBehindLatest))
		}
		if len(records) > 0 {
			last := records[len(records)-1]
			cp.delivered(last.SequenceNumber, last.SubSequenceNumber)
			err := w.callProcessor(shardCtx, log, "process records", func(ctx context.Context) error {
				return proc.ProcessRecords(ctx, ProcessRecordsInput{Records: records, MillisBehindLatest: res.millisBehindLatest, Checkpointer: cp})
			})
			if err != nil {
				end(err)
				return
			}
			w.metrics.count(MetricRecordsProcessed, telemetry.UnitCount, float64(len(records)))
			w.metrics.count(MetricBytesProcessed, telemetry.UnitBytes, float64(st.bytes))
			afterSeq, afterSub = last.SequenceNumber, last.SubSequenceNumber
		} else if w.cfg.ProcessEmptyBatches && !res.ended {
			err := w.callProcessor(shardCtx, log, "process records", func(ctx context.Context) error {
				return proc.ProcessRecords(ctx, ProcessRecordsInput{MillisBehindLatest: res.millisBehindLatest, Checkpointer: cp})
			})
			if err != nil {
				end(err)
				return
			}
		}
		if res.ended {
			w.shardEnded(shardCtx, log, l.Key, h, proc, cp, res.children, end)
			return
		}
	}

	// Graceful shutdown: the batch in hand is processed; let the processor checkpoint, then release the lease.
	err = w.callProcessor(shardCtx, log, "shutdown requested", func(ctx context.Context) error {
		return proc.ShutdownRequested(ctx, ShutdownRequestedInput{Checkpointer: cp})
	})
	if err != nil && (runCtx.Err() != nil || errors.Is(err, ErrLeaseLost) || shardCtx.Err() != nil) {
		end(err)
		return
	}
	if err != nil {
		log.Error("processor failed to shut down; releasing the lease at its last checkpoint", telemetry.LogKeyError, err.Error())
	}
	w.release(runCtx, h)
	log.Info("lease released")
}

// shardEnded lets the processor checkpoint SHARD_END, which unblocks the shard's children.
func (w *Worker) shardEnded(shardCtx context.Context, log *slog.Logger, shardID string, h *heldLease, proc Processor, cp *checkpointer, children []string, end func(error)) {
	if len(children) == 0 {
		var err error
		for attempt := 1; ; attempt++ {
			if children, err = w.childrenOf(shardCtx, shardID); err == nil || shardCtx.Err() != nil {
				break
			}
			log.Warn("list child shards failed", telemetry.LogKeyError, err.Error())
			sleepCtx(shardCtx, w.backoff(attempt))
		}
	}
	cp.shardEnded(children)
	err := w.callProcessor(shardCtx, log, "shard ended", func(ctx context.Context) error {
		if err := proc.ShardEnded(ctx, ShardEndedInput{Checkpointer: cp}); err != nil {
			return err
		}
		h.mu.Lock()
		finished := h.lease.Finished()
		h.mu.Unlock()
		if !finished {
			return errors.New("processor returned from ShardEnded without checkpointing")
		}
		return nil
	})
	if err != nil {
		end(err)
		return
	}
	h.mu.Lock()
	h.released = true // finished: no more renewals; the lease stays at SHARD_END
	h.expiry.Stop()
	h.mu.Unlock()
	log.Info("shard ended", "children", children)
	w.requestSync()
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
		if errors.Is(err, ErrLeaseLost) {
			return err
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
