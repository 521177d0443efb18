package kcl

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrCheckpointOutOfRange is returned by CheckpointAt for a position that was not delivered yet, or that lies before
// the current checkpoint.
var ErrCheckpointOutOfRange = errors.New("checkpoint position out of range")

// checkpointer writes the checkpoints of one held lease.
type checkpointer struct {
	w *Worker
	h *heldLease

	// lastSeq, lastSub is the last record delivered to the processor: checkpoints never go past it.
	lastSeq  string
	lastSub  int64
	ended    bool
	children []string
}

func (c *checkpointer) delivered(seq string, sub int64) {
	c.h.mu.Lock()
	c.lastSeq, c.lastSub = seq, sub
	c.h.mu.Unlock()
}

func (c *checkpointer) shardEnded(children []string) {
	c.h.mu.Lock()
	c.ended, c.children = true, children
	c.h.mu.Unlock()
}

// Checkpoint implements Checkpointer.
func (c *checkpointer) Checkpoint(ctx context.Context) error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if c.ended {
		return c.writeLocked(ctx, CheckpointShardEnd, 0, c.children)
	}
	if c.lastSeq == "" {
		return nil // nothing delivered yet
	}
	return c.checkpointAtLocked(ctx, c.lastSeq, c.lastSub)
}

// CheckpointAt implements Checkpointer.
func (c *checkpointer) CheckpointAt(ctx context.Context, seq string, sub int64) error {
	if !validSequenceNumber(seq) || sub < 0 {
		return fmt.Errorf("checkpoint at %q/%d: %w: not a sequence number", seq, sub, ErrCheckpointOutOfRange)
	}
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return c.checkpointAtLocked(ctx, seq, sub)
}

func (c *checkpointer) checkpointAtLocked(ctx context.Context, seq string, sub int64) error {
	if c.ended && c.isLastRecordLocked(seq, sub) {
		// As the Java checkpointer does: the last record of an ended shard is its end.
		return c.writeLocked(ctx, CheckpointShardEnd, 0, c.children)
	}
	if c.lastSeq == "" || compareExtended(seq, sub, c.lastSeq, c.lastSub) > 0 {
		return fmt.Errorf("checkpoint at %s/%d: %w: past the last delivered record", seq, sub, ErrCheckpointOutOfRange)
	}
	cur := c.h.lease
	if !isSentinel(cur.Checkpoint) && cur.Checkpoint != "" {
		switch compareExtended(seq, sub, cur.Checkpoint, cur.CheckpointSubSequenceNumber) {
		case 0:
			return nil
		case -1:
			return fmt.Errorf("checkpoint at %s/%d: %w: before the current checkpoint %s/%d", seq, sub,
				ErrCheckpointOutOfRange, cur.Checkpoint, cur.CheckpointSubSequenceNumber)
		}
	}
	return c.writeLocked(ctx, seq, sub, nil)
}

// isLastRecordLocked reports whether (seq, sub) is the last record of the shard this processor knows: the last one
// delivered to it, or, when none was, the checkpoint it started from.
func (c *checkpointer) isLastRecordLocked(seq string, sub int64) bool {
	if c.lastSeq != "" {
		return compareExtended(seq, sub, c.lastSeq, c.lastSub) == 0
	}
	cur := c.h.lease
	return !isSentinel(cur.Checkpoint) && cur.Checkpoint != "" &&
		compareExtended(seq, sub, cur.Checkpoint, cur.CheckpointSubSequenceNumber) == 0
}

func (c *checkpointer) writeLocked(ctx context.Context, seq string, sub int64, children []string) error {
	h := c.h
	if h.lost.Load() || h.released {
		return fmt.Errorf("checkpoint %s: %w", h.key, ErrLeaseLost)
	}
	l := h.lease
	start := time.Now()
	err := c.w.table.checkpoint(ctx, &l, seq, sub, children)
	if errors.Is(err, ErrLeaseLost) {
		c.w.lose(h, "checkpoint failed its condition")
		return err
	}
	if err != nil {
		return err
	}
	if h.lost.Load() { // expired while the call was in flight: another worker may hold the lease now
		return fmt.Errorf("checkpoint %s: %w", h.key, ErrLeaseLost)
	}
	h.lease = l
	c.w.written(h, start) // a checkpoint increments the counter, like a renewal
	return nil
}
