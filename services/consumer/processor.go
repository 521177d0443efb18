package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// recordLine is the JSON line written for each record.
type recordLine struct {
	ShardID           string    `json:"shard_id"`
	SequenceNumber    string    `json:"sequence_number"`
	SubSequenceNumber int64     `json:"sub_sequence_number"`
	PartitionKey      string    `json:"partition_key"`
	ArrivalTime       time.Time `json:"arrival_time"`
	// Data holds the payload when it is UTF-8 text, DataBase64 otherwise.
	Data       *string `json:"data,omitempty"`
	DataBase64 string  `json:"data_base64,omitempty"`
}

// stdoutProcessor writes every record as one JSON line and checkpoints every checkpointRecords records or
// checkpointInterval, whichever comes first. Lines are written before the checkpoint, so a checkpoint never covers a
// record that was not written.
type stdoutProcessor struct {
	out                io.Writer
	log                *slog.Logger
	checkpointRecords  int
	checkpointInterval time.Duration
	now                func() time.Time

	shardID        string
	pending        int
	lastCheckpoint time.Time
	buf            []byte
}

// Initialize implements kcl.Processor: it tags the logs with the shard and starts the checkpoint interval.
func (p *stdoutProcessor) Initialize(_ context.Context, in kcl.InitializeInput) error {
	p.shardID = in.ShardID
	p.lastCheckpoint = p.now()
	p.log = p.log.With(telemetry.LogKeyShardID, in.ShardID)
	return nil
}

// ProcessRecords implements kcl.Processor: it writes the batch's lines, then checkpoints when checkpointRecords
// records or checkpointInterval have passed since the last checkpoint.
func (p *stdoutProcessor) ProcessRecords(ctx context.Context, in kcl.ProcessRecordsInput) error {
	p.buf = p.buf[:0]
	for _, r := range in.Records {
		line := recordLine{
			ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber,
			PartitionKey: r.PartitionKey, ArrivalTime: r.ApproximateArrivalTimestamp,
		}
		if utf8.Valid(r.Data) {
			s := string(r.Data)
			line.Data = &s
		} else {
			line.DataBase64 = base64.StdEncoding.EncodeToString(r.Data)
		}
		b, err := json.Marshal(line)
		if err != nil {
			return err
		}
		p.buf = append(append(p.buf, b...), '\n')
	}
	if _, err := p.out.Write(p.buf); err != nil {
		return err
	}
	p.pending += len(in.Records)
	// The worker delivers empty batches while the shard is idle, so the interval is checked then too.
	if p.pending > 0 && (p.pending >= p.checkpointRecords || p.now().Sub(p.lastCheckpoint) >= p.checkpointInterval) {
		return p.checkpoint(ctx, in.Checkpointer)
	}
	return nil
}

// checkpoint records progress. A lease lost is returned (the worker stops the shard); other failures are logged and
// retried with the next batch, since the records are already written.
func (p *stdoutProcessor) checkpoint(ctx context.Context, cp kcl.Checkpointer) error {
	err := cp.Checkpoint(ctx)
	if errors.Is(err, kcl.ErrLeaseLost) {
		return err
	}
	if err != nil {
		p.log.Warn("checkpoint failed; retried after the next batch", telemetry.LogKeyError, err.Error())
		return nil
	}
	p.pending = 0
	p.lastCheckpoint = p.now()
	return nil
}

// LeaseLost implements kcl.Processor. There is nothing to release: the lines are written and the checkpoint is
// another worker's now.
func (p *stdoutProcessor) LeaseLost(context.Context) {}

// ShardEnded implements kcl.Processor: it checkpoints SHARD_END so that the shard's children are read.
func (p *stdoutProcessor) ShardEnded(ctx context.Context, in kcl.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested implements kcl.Processor: it checkpoints every record written before the lease is released.
func (p *stdoutProcessor) ShutdownRequested(ctx context.Context, in kcl.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
