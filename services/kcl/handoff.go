package kcl

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/streamproc/streamproc/services/telemetry"
)

// A graceful hand-off moves a lease between two live workers without a duplicate or a failover wait, as the Java
// KCL 3.x does:
//  1. the taker (a less loaded worker) sets leaseOwner to itself and checkpointOwner to the old owner, on the
//     condition that the owner did not change and no hand-off is in progress (startHandoff); the counter is left
//     alone, so the old owner keeps renewing;
//  2. the old owner's next write fails its condition; it reads the item, sees the hand-off and adopts it (writeHeld),
//     stops reading, finishes the batch in hand, lets its processor checkpoint in ShutdownRequested, and then removes
//     checkpointOwner (finishHandoff);
//  3. the taker, which looks for its assigned leases every half renewal interval (discoverLeases), finds the lease
//     with leaseOwner itself and no checkpointOwner, takes it and reads from that checkpoint.
// A hand-off the old owner has not finished within HandoffTimeout + FailoverTime falls back to a take: the old owner
// loses the lease, and records after its last checkpoint are delivered again.

// startHandoff starts the graceful hand-off of l from its owner to this worker.
func (w *Worker) startHandoff(ctx context.Context, l Lease) {
	from := l.Owner
	if !w.claim(ctx, "start hand-off", &l, w.table.startHandoff) {
		return
	}
	w.mu.Lock()
	w.handoffs[l.Key] = time.Now()
	w.mu.Unlock()
	w.metrics.count(MetricLeaseMoves, telemetry.UnitCount, 1)
	w.log.Info("lease hand-off started", telemetry.LogKeyShardID, l.Key, "from", from,
		"throughput_kbps", l.ThroughputKBps)
}

// writeHeld runs write (a renewal, checkpoint, release or end of hand-off) on a copy of h's lease and keeps the
// item as written. When the write fails its condition because another worker started a hand-off of the lease from
// this one, the hand-off is adopted (adoptHandoff) and the write made again under the new owners. Called with h.mu
// held.
func (w *Worker) writeHeld(ctx context.Context, h *heldLease, write func(*Lease) error) error {
	l := h.lease
	err := write(&l)
	if errors.Is(err, ErrLeaseLost) && w.adoptHandoff(ctx, h) {
		l = h.lease
		err = write(&l)
	}
	if err == nil {
		h.lease = l
	}
	return err
}

// adoptHandoff reads h's lease after a failed condition. When the item is this worker's lease being handed over to
// another worker (checkpointOwner this worker, leaseOwner another, the counter unchanged), h's lease takes the new
// owners, the consumer is asked to stop, checkpoint and let go, and adoptHandoff returns true. Any other change
// means the lease is lost.
func (w *Worker) adoptHandoff(ctx context.Context, h *heldLease) bool {
	if h.lease.HandingOver() {
		return false // adopted already: another change is a loss
	}
	cur, found, err := w.table.Get(ctx, h.key)
	if err != nil || !found || cur.Counter != h.lease.Counter || cur.CheckpointOwner != w.cfg.WorkerID ||
		cur.Owner == w.cfg.WorkerID || cur.Owner == "" {
		return false
	}
	h.lease.Owner, h.lease.CheckpointOwner = cur.Owner, cur.CheckpointOwner
	w.log.Info("lease handed over: finishing the batch in hand, checkpointing, then letting go",
		telemetry.LogKeyShardID, h.key, "to", cur.Owner)
	h.stopConsumer()
	return true
}

// discoverLeases looks for the leases assigned to this worker that it does not read, and takes those it may read
// now: a lease handed over to it whose old owner has let go, a lease a Java KCL 3.x leader or an operator
// assigned to it, and a lease whose hand-off timed out (HandoffTimeout + FailoverTime after this worker first saw
// it). It reads the keys from the owner index where the table has one, else it checks the hand-offs it started
// (the take pass finds the rest by scanning). The pass gets RenewInterval.
func (w *Worker) discoverLeases(ctx context.Context) {
	readCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	w.mu.Lock()
	keys := make([]string, 0, len(w.handoffs))
	for k := range w.handoffs {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	if !w.noOwnerIndex.Load() {
		owned, err := w.table.ownedKeys(readCtx, w.cfg.WorkerID)
		switch {
		case errors.Is(err, errNoOwnerIndex):
			w.noOwnerIndex.Store(true)
			w.log.Info("the lease table has no usable owner index; assigned leases are found by scanning",
				"index", LeaseOwnerIndexName, telemetry.LogKeyError, err.Error())
		case err != nil:
			if readCtx.Err() == nil {
				w.log.Warn("query the owner index failed", telemetry.LogKeyError, err.Error())
			}
		default:
			keys = append(keys, owned...)
		}
	}
	slices.Sort(keys)
	for _, key := range slices.Compact(keys) {
		w.discoverLease(ctx, readCtx, key)
	}
}

// discoverLease checks one lease assigned to this worker (see discoverLeases). It reads with readCtx; a lease it
// takes is read under ctx, the run's context.
func (w *Worker) discoverLease(ctx, readCtx context.Context, key string) {
	w.mu.Lock()
	_, held := w.held[key]
	_, cooling := w.cooldown[key]
	stopping := w.stopping
	w.mu.Unlock()
	if held || cooling || stopping {
		return
	}
	l, found, err := w.table.Get(readCtx, key)
	if err != nil {
		if readCtx.Err() == nil {
			w.log.Warn("read an assigned lease failed", telemetry.LogKeyShardID, key, telemetry.LogKeyError, err.Error())
		}
		return
	}
	now := time.Now()
	w.mu.Lock()
	since, tracked := w.handoffs[key]
	pending := found && l.Owner == w.cfg.WorkerID && !l.Finished() && l.HandingOver()
	switch {
	case pending && !tracked:
		w.handoffs[key] = now // a hand-off to this worker that another worker started
	case !pending:
		delete(w.handoffs, key)
	}
	w.mu.Unlock()
	switch {
	case !found || l.Owner != w.cfg.WorkerID || l.Finished():
	case !l.HandingOver():
		w.takeOne(ctx, l)
	case tracked && now.Sub(since) > w.cfg.HandoffTimeout+w.cfg.FailoverTime:
		w.metrics.count(MetricHandoffTimeouts, telemetry.UnitCount, 1)
		w.log.Warn("lease hand-off timed out; taking the lease", telemetry.LogKeyShardID, key, "from", l.CheckpointOwner,
			"waited", now.Sub(since).String())
		w.mu.Lock()
		delete(w.handoffs, key)
		w.mu.Unlock()
		w.takeOne(ctx, l)
	}
}
