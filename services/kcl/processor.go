package kcl

import (
	"context"
	"errors"
	"time"
)

// ErrRestartFromCheckpoint, wrapped in an error a Processor returns, says the processor lost what it was given since
// the shard's last checkpoint (a MultiLang child process died or hung, an upload's state is unknown): the worker
// closes it, starts a new processor at the checkpoint and delivers every record after it again. Restarts count
// towards Config.MaxProcessAttempts while the checkpoint does not move.
var ErrRestartFromCheckpoint = errors.New("processor restarts from the last checkpoint")

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
	// position must not lie past the last record delivered, nor before the current checkpoint (ErrCheckpointOutOfRange);
	// the current checkpoint itself is accepted and changes nothing. Inside ShardEnded, the last record's position
	// records SHARD_END, as Checkpoint does.
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
// An error (or a panic) from any call makes the worker make the same call again after a backoff; after
// Config.MaxProcessAttempts attempts it gives up the lease so that another worker retries. An error that wraps
// ErrRestartFromCheckpoint instead makes the worker discard the processor and start a new one that is given every
// record after the shard's checkpoint again. Records are never skipped.
//
// A Processor that also implements io.Closer is closed once its shard's processing has ended, however it ended
// (including a restart and an abrupt stop of the worker, when no other call is made).
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

// ProcessorFunc returns a Config.NewProcessor for the common case, where one function handles the records: fn gets
// each batch of a shard's records in order (every Record names its shard), the batch is checkpointed once fn
// returns nil for it, the shard's end is checkpointed (SHARD_END) so its children are read, and LeaseLost and
// ShutdownRequested need nothing more. An error from fn makes the worker give fn the same batch again (see
// Processor). A processor runs per held shard, so fn is called for several shards at once.
//
// Each checkpoint is a DynamoDB write, up to one per read (polling reads at most five times a second per shard);
// a processor that checkpoints less often implements Processor itself.
func ProcessorFunc(fn func(ctx context.Context, records []Record) error) func() Processor {
	return func() Processor { return batchFunc{fn} }
}

// batchFunc is the Processor ProcessorFunc makes.
type batchFunc struct {
	fn func(ctx context.Context, records []Record) error
}

// Initialize implements Processor.
func (batchFunc) Initialize(context.Context, InitializeInput) error { return nil }

// ProcessRecords implements Processor: fn, then a checkpoint of the batch.
func (p batchFunc) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if len(in.Records) == 0 {
		return nil
	}
	if err := p.fn(ctx, in.Records); err != nil {
		return err
	}
	return in.Checkpointer.Checkpoint(ctx)
}

// LeaseLost implements Processor.
func (batchFunc) LeaseLost(context.Context) {}

// ShardEnded implements Processor: it checkpoints SHARD_END.
func (batchFunc) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested implements Processor: every batch fn handled is checkpointed already.
func (batchFunc) ShutdownRequested(context.Context, ShutdownRequestedInput) error { return nil }
