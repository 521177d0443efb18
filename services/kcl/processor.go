package kcl

import (
	"context"
	"time"
)

// Record is one user record as the processor receives it: a Kinesis record, or one record out of a KPL aggregate.
type Record struct {
	// ShardID is the shard the record was read from.
	ShardID string
	// SequenceNumber is the Kinesis record's sequence number (shared by every record of one aggregate).
	SequenceNumber string
	// SubSequenceNumber is the record's position inside its aggregate; 0 when it was not aggregated.
	SubSequenceNumber int64
	// PartitionKey is the user record's partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, empty when it has none.
	ExplicitHashKey string
	// Data is the payload. It is valid only during the ProcessRecords call: copy it to keep it.
	Data []byte
	// ApproximateArrivalTimestamp is when Kinesis accepted the (aggregated) record.
	ApproximateArrivalTimestamp time.Time
	// Aggregated tells whether the record came out of a KPL aggregate.
	Aggregated bool
	// OutsideShardRange is set for an aggregated user record whose hash key lies outside the shard's hash key range
	// (the producer's shard map was stale). The Java KCL drops such records; this package delivers them.
	OutsideShardRange bool
}

// Checkpointer records how far a shard was processed. Its methods fail with an error wrapping ErrLeaseLost when the
// lease changed hands; the processor should then return at once.
type Checkpointer interface {
	// Checkpoint records every record delivered so far as processed (inside ShardEnded: the whole shard).
	Checkpoint(ctx context.Context) error
	// CheckpointAt records every record up to and including (sequenceNumber, subSequenceNumber) as processed. The
	// position must be one that was delivered, and not before the current checkpoint.
	CheckpointAt(ctx context.Context, sequenceNumber string, subSequenceNumber int64) error
}

// InitializeInput describes the shard a processor starts on.
type InitializeInput struct {
	// ShardID is the shard the processor is given.
	ShardID string
	// Checkpoint and CheckpointSubSequenceNumber are where the shard is read from (after this position), or a
	// sentinel such as TRIM_HORIZON.
	Checkpoint string
	// CheckpointSubSequenceNumber is the checkpoint's position inside its aggregate (see Checkpoint above).
	CheckpointSubSequenceNumber int64
}

// ProcessRecordsInput is one batch of records of one shard, in order. With Config.ProcessEmptyBatches it may hold no
// records.
type ProcessRecordsInput struct {
	// Records are the batch's user records, aggregates already split, in shard order.
	Records []Record
	// MillisBehindLatest is how far the batch is behind the tip of the shard.
	MillisBehindLatest int64
	// Checkpointer records the shard's progress; Checkpoint covers every record delivered so far.
	Checkpointer Checkpointer
}

// ShardEndedInput is given when every record of a closed shard was delivered.
type ShardEndedInput struct {
	// Checkpointer must be called (Checkpoint) to record SHARD_END: until then the shard's children are not read.
	Checkpointer Checkpointer
}

// ShutdownRequestedInput is given when the worker shuts down gracefully, after the batch in hand was processed.
type ShutdownRequestedInput struct {
	// Checkpointer lets the processor record its progress before the lease is released.
	Checkpointer Checkpointer
}

// Processor handles the records of one shard, with the Java KCL's lifecycle: Initialize, then ProcessRecords for each
// batch, then exactly one of ShardEnded, LeaseLost or ShutdownRequested. The calls for one shard never overlap.
//
// An error (or a panic) from ProcessRecords makes the worker give the same records again after a backoff; after
// Config.MaxProcessAttempts attempts it gives up the lease so that another worker retries. Records are never skipped.
type Processor interface {
	// Initialize is called once before the first batch.
	Initialize(ctx context.Context, in InitializeInput) error
	// ProcessRecords handles one batch. ctx is cancelled when the lease is lost.
	ProcessRecords(ctx context.Context, in ProcessRecordsInput) error
	// LeaseLost is called when another worker took the lease: checkpointing is no longer possible.
	LeaseLost(ctx context.Context)
	// ShardEnded is called when the shard is closed and fully delivered; it must checkpoint.
	ShardEnded(ctx context.Context, in ShardEndedInput) error
	// ShutdownRequested is called on graceful shutdown; the processor should checkpoint what it processed.
	ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error
}
