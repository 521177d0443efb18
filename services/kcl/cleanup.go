package kcl

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/telemetry"
)

// Reasons a lease is deleted by the clean-up pass, as logged.
const (
	// cleanupShardCompleted: the shard is at SHARD_END and every child has started processing.
	cleanupShardCompleted = "shard completed and its children started"
	// cleanupShardExpired: ListShards no longer returns the shard (it aged out past the stream's retention), so it
	// holds no record any more, and the lease is finished or its children's leases exist.
	cleanupShardExpired = "shard no longer in the stream"
)

// leaseDeletion is a lease the clean-up pass deletes, and why.
type leaseDeletion struct {
	lease  Lease
	reason string
}

// planCleanup decides which leases to delete, as the Java KCL's LeaseCleanupManager does. shards is a complete
// ListShards result. It is pure, for tests.
//
// A lease is deleted when either
//   - its shard is listed, checkpointed at SHARD_END, every parent's lease is gone (deletion goes from the oldest
//     shards down, so the lineage in the table stays connected), and every child's lease exists with a checkpoint
//     past TRIM_HORIZON/LATEST/AT_TIMESTAMP (the children started: the parent is no longer needed to order them); or
//   - its shard is no longer listed (aged out past retention: no record is left to read) and the lease is at
//     SHARD_END or every child's lease exists (so the lineage continues, and the children stop waiting for it).
//
// A lease of a listed shard that is not at SHARD_END is never deleted: it may still hold unprocessed records.
func planCleanup(leases []Lease, shards []ktypes.Shard) []leaseDeletion {
	if len(shards) == 0 {
		return nil // a stream always has a shard: an empty list says nothing about which shards aged out
	}
	listed := make(map[string]bool, len(shards))
	// Parent links from both the stream and the leases: the stream forgets aged-out shards, and a lease knows its
	// children only once it ended.
	children, parents := map[string][]string{}, map[string][]string{}
	addChild := func(parent, child string) {
		if parent != "" && !slices.Contains(children[parent], child) {
			children[parent] = append(children[parent], child)
			parents[child] = append(parents[child], parent)
		}
	}
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		listed[id] = true
		addChild(aws.ToString(s.ParentShardId), id)
		addChild(aws.ToString(s.AdjacentParentShardId), id)
	}
	remaining := make(map[string]Lease, len(leases))
	for _, l := range leases {
		remaining[l.Key] = l
		for _, p := range l.ParentShardIDs {
			addChild(p, l.Key)
		}
		for _, c := range l.ChildShardIDs {
			addChild(l.Key, c)
		}
	}
	// Oldest shards first, so a parent deleted in this pass lets its children's leases go in the same pass.
	sorted := slices.Clone(leases)
	slices.SortFunc(sorted, func(a, b Lease) int { return compareShardIDs(a.Key, b.Key) })

	var out []leaseDeletion
	for _, l := range sorted {
		kids := children[l.Key]
		childLeases := len(kids) > 0
		childrenStarted := len(kids) > 0
		for _, c := range kids {
			cl, ok := remaining[c]
			childLeases = childLeases && ok
			childrenStarted = childrenStarted && ok && started(cl)
		}
		reason := ""
		switch {
		case listed[l.Key]:
			if l.Finished() && childrenStarted && !slices.ContainsFunc(parents[l.Key], func(p string) bool {
				_, ok := remaining[p]
				return ok
			}) {
				reason = cleanupShardCompleted
			}
		case l.Finished() || childLeases:
			reason = cleanupShardExpired
		}
		if reason != "" {
			out = append(out, leaseDeletion{lease: l, reason: reason})
			delete(remaining, l.Key)
		}
	}
	return out
}

// started reports whether a lease's shard has been read: its checkpoint is a sequence number or SHARD_END.
func started(l Lease) bool {
	return l.Finished() || !isSentinel(l.Checkpoint)
}

// cleanupLeases runs one clean-up pass (see planCleanup): every worker runs it, and the conditional deletes make
// concurrent passes safe, since only the first delete of a lease at a given counter succeeds. The pass gets
// FailoverTime.
func (w *Worker) cleanupLeases(ctx context.Context) {
	defer w.cleanupPasses.Add(1)
	ctx, cancel := context.WithTimeout(ctx, w.cfg.FailoverTime)
	defer cancel()
	shards, err := w.listShards(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("lease clean-up: list shards failed", telemetry.LogKeyError, err.Error())
		}
		return
	}
	leases, err := w.table.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("lease clean-up: list leases failed", telemetry.LogKeyError, err.Error())
		}
		return
	}
	for _, d := range planCleanup(leases, shards) {
		deleted, err := w.table.delete(ctx, d.lease)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("lease clean-up: delete failed", telemetry.LogKeyShardID, d.lease.Key, telemetry.LogKeyError, err.Error())
			}
			return // a later child's deletion assumed this one
		}
		if !deleted {
			return // the lease changed since it was read (or a peer deleted it): decide again on the next pass
		}
		w.metrics.count(MetricLeasesCleanedUp, telemetry.UnitCount, 1)
		w.log.Info("lease deleted", telemetry.LogKeyShardID, d.lease.Key, "reason", d.reason,
			"checkpoint", d.lease.Checkpoint, "owner", d.lease.Owner)
	}
}
