package kcl

import (
	"strconv"
	"strings"
)

// Attribute names of a lease item, exactly as the Java KCL 2.x writes them (DynamoDBLeaseSerializer), so that a team
// can switch between the Java KCL and this package on the same table.
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
)

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
}

// Finished reports whether every record of the shard was processed.
func (l Lease) Finished() bool { return l.Checkpoint == CheckpointShardEnd }

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
