package kcl

import (
	"cmp"
	"strconv"
	"strings"
)

// Attribute names of a lease item, exactly as the Java KCL 2.x and 3.x write them (DynamoDBLeaseSerializer), so that
// a team can switch between the Java KCL and this package on the same table. Every write of this package is an
// UpdateItem of the attributes it names, or a PutItem of a new item: attributes it does not know are kept.
const (
	// AttrLeaseKey is the table's hash key (type S): the shard id.
	AttrLeaseKey = "leaseKey"
	// AttrLeaseOwner is the worker id holding the lease; absent when nobody holds it.
	AttrLeaseOwner = "leaseOwner"
	// AttrLeaseCounter (type N) is incremented by every renewal, take, release and checkpoint; conditional writes on
	// it detect that another worker has taken the lease.
	AttrLeaseCounter = "leaseCounter"
	// AttrCheckpoint is the sequence number of the last processed record, or a sentinel (TRIM_HORIZON, LATEST,
	// AT_TIMESTAMP, SHARD_END).
	AttrCheckpoint = "checkpoint"
	// AttrCheckpointSubSequenceNumber (type N) is the position of the last processed user record inside the
	// aggregated record named by AttrCheckpoint (0 for a record that is not aggregated).
	AttrCheckpointSubSequenceNumber = "checkpointSubSequenceNumber"
	// AttrOwnerSwitchesSinceCheckpoint (type N) counts owner changes since the last checkpoint.
	AttrOwnerSwitchesSinceCheckpoint = "ownerSwitchesSinceCheckpoint"
	// AttrParentShardID (type SS) holds the parent shard ids. The Java KCL names it in the singular.
	AttrParentShardID = "parentShardId"
	// AttrChildShardIDs (type SS) holds the child shard ids, written when the shard ends.
	AttrChildShardIDs = "childShardIds"
	// AttrStartingHashKey is the first hash key of the shard, as a decimal string.
	AttrStartingHashKey = "startingHashKey"
	// AttrEndingHashKey is the last hash key of the shard, as a decimal string.
	AttrEndingHashKey = "endingHashKey"
	// AttrPendingCheckpoint, AttrPendingCheckpointSubSequenceNumber and AttrPendingCheckpointState are the Java
	// KCL's two-phase checkpoint. This package never sets them and ignores them when it reads an item; a checkpoint
	// removes them, as the Java KCL's does, so that a pending checkpoint left by a Java worker is not applied later.
	AttrPendingCheckpoint                  = "pendingCheckpoint"
	AttrPendingCheckpointSubSequenceNumber = "pendingCheckpointSubSequenceNumber"
	AttrPendingCheckpointState             = "pendingCheckpointState"
	// AttrThroughputKBps (type N) is the lease's smoothed throughput in KB/s, written by its holder at each renewal,
	// as the Java KCL 3.x does; lease balancing by load reads it.
	AttrThroughputKBps = "throughputKBps"
	// AttrCheckpointOwner is set while a lease is handed over gracefully (Java KCL 3.x): it names the old owner, which
	// still reads the shard until it has checkpointed, while AttrLeaseOwner already names the new one.
	AttrCheckpointOwner = "checkpointOwner"
	// AttrEntityType tells what an item of the table is. The Java KCL 3.x writes EntityTypeLease on leases and keeps
	// other entities in the same table (worker metrics, coordinator state); an item without it is a lease.
	AttrEntityType = "entityType"
)

// EntityTypeLease is AttrEntityType's value on a lease. Items of any other entity type are not leases: this package
// neither reads nor writes them.
const EntityTypeLease = "LEASE"

// LeaseOwnerIndexName is the lease table's global secondary index of the Java KCL 3.x (hash key leaseOwner, range key
// leaseKey, keys only). Workers find the leases assigned to them through it when it exists.
const LeaseOwnerIndexName = "LeaseOwnerToLeaseKeyIndex"

// LeaseTableHashKey is the lease table's only key attribute (a string hash key). The infrastructure code that owns
// the table in AWS uses this constant for its key schema.
const LeaseTableHashKey = AttrLeaseKey

// Checkpoint sentinels, as the Java KCL writes them in AttrCheckpoint.
const (
	// CheckpointTrimHorizon: read the shard from its oldest record.
	CheckpointTrimHorizon = "TRIM_HORIZON"
	// CheckpointLatest: read only records written after the reader starts.
	CheckpointLatest = "LATEST"
	// CheckpointAtTimestamp: read from the configured timestamp.
	CheckpointAtTimestamp = "AT_TIMESTAMP"
	// CheckpointShardEnd: the shard is closed and every record in it was processed.
	CheckpointShardEnd = "SHARD_END"
)

// Lease is one item of the lease table: who reads a shard, and how far it got.
type Lease struct {
	// Key is the shard id.
	Key string
	// Owner is the worker id of the holder; empty when nobody holds the lease.
	Owner string
	// Counter is the lease counter the item had when it was read or last written by this worker.
	Counter int64
	// Checkpoint is the last processed position: a sequence number or a Checkpoint... sentinel.
	Checkpoint string
	// CheckpointSubSequenceNumber is the last processed user record inside the Checkpoint aggregate.
	CheckpointSubSequenceNumber int64
	// OwnerSwitchesSinceCheckpoint counts owner changes since the last checkpoint.
	OwnerSwitchesSinceCheckpoint int64
	// ParentShardIDs are the shards this one was split or merged from.
	ParentShardIDs []string
	// ChildShardIDs are the shards that continue this one; known once the shard ended.
	ChildShardIDs []string
	// StartingHashKey and EndingHashKey are the shard's hash key range as decimal strings.
	StartingHashKey, EndingHashKey string
	// ThroughputKBps is the lease's smoothed throughput as last recorded by its holder; meaningful when
	// HasThroughput is set (no holder has recorded one yet otherwise).
	ThroughputKBps float64
	// HasThroughput tells whether the item holds a throughput.
	HasThroughput bool
	// CheckpointOwner is the old owner of a lease being handed over gracefully; empty otherwise.
	CheckpointOwner string
}

// Finished reports whether every record of the shard was processed.
func (l Lease) Finished() bool { return l.Checkpoint == CheckpointShardEnd }

// ActualOwner is the worker reading the shard: the old owner while the lease is handed over (CheckpointOwner), else
// Owner. It is the Java KCL 3.x's actualOwner.
func (l Lease) ActualOwner() string { return cmp.Or(l.CheckpointOwner, l.Owner) }

// HandingOver reports whether a graceful hand-off of the lease is in progress: Owner is the new owner, and
// CheckpointOwner, the old one, has not let go yet.
func (l Lease) HandingOver() bool { return l.CheckpointOwner != "" }

// isSentinel reports whether a checkpoint value is a KCL sentinel rather than a sequence number.
func isSentinel(checkpoint string) bool {
	switch checkpoint {
	case CheckpointTrimHorizon, CheckpointLatest, CheckpointAtTimestamp, CheckpointShardEnd:
		return true
	}
	return false
}

// compareSequenceNumbers orders two Kinesis sequence numbers (decimal strings without leading zeros).
func compareSequenceNumbers(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// compareExtended orders (sequence number, sub-sequence number) positions.
func compareExtended(seqA string, subA int64, seqB string, subB int64) int {
	if c := compareSequenceNumbers(seqA, seqB); c != 0 {
		return c
	}
	switch {
	case subA < subB:
		return -1
	case subA > subB:
		return 1
	}
	return 0
}

// validSequenceNumber reports whether s looks like a Kinesis sequence number: decimal digits only.
func validSequenceNumber(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }
