package s3sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// NewProcessorFunc validates cfg and returns the function a kcl.Config's NewProcessor takes: each call makes the
// Processor of one shard, writing through client.
func NewProcessorFunc(cfg Config, client S3API) (func() kcl.Processor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("s3sink: the S3 client is nil")
	}
	return func() kcl.Processor {
		return &Processor{cfg: cfg, s3: client, log: cfg.Logger, now: time.Now}
	}, nil
}

// Processor writes one shard's records to S3 as objects, exactly once (see the package doc). It implements
// kcl.Processor and io.Closer.
type Processor struct {
	cfg Config
	s3  S3API
	log *slog.Logger
	now func() time.Time
	// dir holds this processor's spill files; created with the first object.
	dir string

	// checkExisting is set while the next object starts right after a checkpoint this processor did not write
	// after an upload of its own: a predecessor may have written that object, so its key is looked up first.
	checkExisting bool
	// adopted, when set, is the last record of an object found at a key this processor was to write: records up to
	// it are skipped, and it is checkpointed once delivered.
	adopted *position
	// batch is the object being built (open) or waiting for its upload (sealed).
	batch *batch
	// checkpointDue, when set, is the last record of an object that is in S3 and not yet checkpointed: it is
	// checkpointed before anything else happens.
	checkpointDue *position
	// restartDue makes the processor restart from checkpointDue: the object it adopted ended before the records it
	// had encoded, which are read again from the stream.
	restartDue bool
	// resume is where a batch that failed part-way goes on when the worker gives it again.
	resume resumePoint
}

// resumePoint is how far into a batch (the one starting at first) the processor got before a call failed.
type resumePoint struct {
	first position
	next  int
	set   bool
}

// Initialize implements kcl.Processor.
func (p *Processor) Initialize(_ context.Context, in kcl.InitializeInput) error {
	p.log = p.cfg.Logger.With(telemetry.LogKeyShardID, in.ShardID)
	p.checkExisting = true // whoever held the shard before may have written the next object
	return nil
}

// ProcessRecords implements kcl.Processor: it adds the records to the open object, and flushes it when it reaches
// Config.MaxObjectBytes or Config.MaxObjectAge: upload, then checkpoint at its last record, then the next object.
// Given the same batch again after an error, it goes on where it stopped.
func (p *Processor) ProcessRecords(ctx context.Context, in kcl.ProcessRecordsInput) error {
	records := in.Records
	i := p.resumeIndex(records)
	for {
		if err := p.settle(ctx, in.Checkpointer); err != nil {
			p.remember(records, i)
			return err
		}
		if i == len(records) {
			break
		}
		n, err := p.take(ctx, records[i:])
		i += n
		if err != nil {
			p.remember(records, i)
			return err
		}
	}
	if p.batch == nil || p.now().Sub(p.batch.opened) < p.cfg.MaxObjectAge {
		return nil
	}
	if err := p.seal(FlushAge); err != nil {
		return err
	}
	if err := p.settle(ctx, in.Checkpointer); err != nil {
		p.remember(records, i)
		return err
	}
	return nil
}

// LeaseLost implements kcl.Processor: no checkpoint is possible, so the open object is uploaded once, without
// one; the shard's next owner finds it at its key and adopts it instead of writing the same records again. If it
// does not land, the next owner writes those records itself.
func (p *Processor) LeaseLost(ctx context.Context) {
	b := p.batch
	if b == nil {
		return
	}
	defer p.dropBatch()
	if err := b.seal(FlushLeaseLost); err != nil {
		p.log.Warn("lease lost: the open object could not be completed; the next owner writes its records",
			telemetry.LogKeyError, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.LeaseLostUploadTimeout)
	defer cancel()
	start := time.Now()
	err := p.put(ctx, b)
	switch {
	case err == nil:
		p.written(b, start)
		p.log.Info("lease lost: uploaded the open object for the next owner to adopt", "key", b.key)
	case isPreconditionFailed(err):
		p.log.Info("lease lost: the open object's key is taken already", "key", b.key)
	default:
		p.log.Warn("lease lost: the open object was not uploaded; the next owner writes its records", "key", b.key,
			telemetry.LogKeyError, err.Error())
	}
}

// ShardEnded implements kcl.Processor: the open object is flushed and checkpointed, then the shard's end.
func (p *Processor) ShardEnded(ctx context.Context, in kcl.ShardEndedInput) error {
	if p.adopted != nil {
		return fmt.Errorf("shard ended before %s, the last record of the object adopted at this position", p.adopted)
	}
	if err := p.seal(FlushShardEnd); err != nil {
		return err
	}
	if err := p.settle(ctx, in.Checkpointer); err != nil {
		return err
	}
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested implements kcl.Processor: the open object is flushed and checkpointed before the lease is
// released.
func (p *Processor) ShutdownRequested(ctx context.Context, in kcl.ShutdownRequestedInput) error {
	if err := p.seal(FlushShutdown); err != nil {
		return err
	}
	return p.settle(ctx, in.Checkpointer)
}

// Close implements io.Closer: the worker calls it once the shard's processing ended, however it ended. An object
// not uploaded by then is dropped (its records are read again by the shard's next processor), and the spill files
// are removed.
func (p *Processor) Close() error {
	p.dropBatch()
	if p.dir == "" {
		return nil
	}
	return os.RemoveAll(p.dir)
}

// take consumes a prefix of records (at least one, unless it only looked up an existing object) and returns its
// length: records an adopted object holds are skipped, the others are added to the open object, which is sealed
// once full.
func (p *Processor) take(ctx context.Context, records []kcl.Record) (int, error) {
	if p.adopted != nil {
		return p.skipAdopted(records)
	}
	if n := p.skipOutsideShardRange(records); n > 0 {
		return n, nil
	}
	if i := slices.IndexFunc(records, p.dropped); i > 0 {
		records = records[:i] // the batch stops before the next record dropped
	}
	if p.batch == nil {
		if p.checkExisting {
			return 0, p.lookUpExisting(ctx, &records[0])
		}
		if err := p.openBatch(&records[0]); err != nil {
			return 0, err
		}
	}
	n, full, err := p.batch.add(records, p.cfg.MaxObjectBytes)
	if err != nil {
		p.dropBatch()
		return 0, fmt.Errorf("%w: encode records: %w", kcl.ErrRestartFromCheckpoint, err)
	}
	if full {
		return n, p.seal(FlushSize)
	}
	return n, nil
}

// skipAdopted skips the records up to the adopted object's last, which becomes the checkpoint due.
func (p *Processor) skipAdopted(records []kcl.Record) (int, error) {
	for n := range records {
		switch pos := positionOf(&records[n]); pos.compare(*p.adopted) {
		case 0:
			p.checkpointDue, p.adopted = p.adopted, nil
			p.checkExisting = true // the next object starts after a checkpoint this processor did not upload
			return n + 1, nil
		case 1:
			return n, fmt.Errorf("record %s came after %s, the last record of the object adopted, which never came", pos, p.adopted)
		}
	}
	return len(records), nil
}

// dropped tells whether r is a KPL user record outside its shard's hash key range that is not kept (see
// Config.KeepRecordsOutsideShardRange).
func (p *Processor) dropped(r kcl.Record) bool {
	return r.OutsideShardRange && !p.cfg.KeepRecordsOutsideShardRange
}

// skipOutsideShardRange skips the records dropped at the start of records and returns how many.
func (p *Processor) skipOutsideShardRange(records []kcl.Record) int {
	n := 0
	for n < len(records) && p.dropped(records[n]) {
		n++
	}
	if n > 0 {
		p.cfg.Metrics.Add(MetricRecordsOutsideShardRangeDropped, telemetry.UnitCount, float64(n))
	}
	return n
}

// lookUpExisting looks for an object at the key of the object first would start; one found is adopted.
func (p *Processor) lookUpExisting(ctx context.Context, first *kcl.Record) error {
	key := ObjectKey(p.cfg.Prefix, p.cfg.Format, first)
	last, found, err := p.existingObject(ctx, key)
	if err != nil {
		return err
	}
	p.checkExisting = false
	if !found {
		return nil
	}
	if last.compare(positionOf(first)) < 0 {
		return fmt.Errorf("object %s ends at %s, before its first record %s", key, last, positionOf(first))
	}
	p.adopted = &last
	p.cfg.Metrics.Add(MetricObjectsAdopted, telemetry.UnitCount, 1)
	p.log.Info("adopting the object a previous owner wrote and did not checkpoint", "key", key, "last", last.String())
	return nil
}

// openBatch starts an object at first, creating the processor's spill directory with the first one.
func (p *Processor) openBatch(first *kcl.Record) error {
	if p.dir == "" {
		dir, err := os.MkdirTemp(p.cfg.SpillDir, "s3sink-*")
		if err != nil {
			return fmt.Errorf("%w: create spill directory: %w", kcl.ErrRestartFromCheckpoint, err)
		}
		p.dir = dir
	}
	b, err := openBatch(&p.cfg, p.dir, first, p.now())
	if err != nil {
		return fmt.Errorf("%w: %w", kcl.ErrRestartFromCheckpoint, err)
	}
	p.batch = b
	return nil
}

// seal completes the open object for upload, flushed for reason; nothing happens when no object is open.
func (p *Processor) seal(reason string) error {
	if p.batch == nil {
		return nil
	}
	if err := p.batch.seal(reason); err != nil {
		p.dropBatch()
		return fmt.Errorf("%w: %w", kcl.ErrRestartFromCheckpoint, err)
	}
	return nil
}

// settle finishes what must happen before the next record: the upload of a sealed object, the checkpoint at the
// last record of an object in S3, and the restart an adoption asked for.
func (p *Processor) settle(ctx context.Context, cp kcl.Checkpointer) error {
	if p.batch != nil && p.batch.reason != "" {
		if err := p.upload(ctx); err != nil {
			return err
		}
	}
	if p.checkpointDue != nil {
		if err := cp.CheckpointAt(ctx, p.checkpointDue.seq, p.checkpointDue.sub); err != nil {
			return fmt.Errorf("checkpoint at %s, the last record of an object in S3: %w", p.checkpointDue, err)
		}
		p.checkpointDue = nil
	}
	if p.restartDue {
		return fmt.Errorf("%w: the adopted object ended before the records encoded here", kcl.ErrRestartFromCheckpoint)
	}
	return nil
}

// dropBatch discards the batch and its spill file.
func (p *Processor) dropBatch() {
	if p.batch == nil {
		return
	}
	if err := p.batch.discard(); err != nil {
		p.log.Warn("remove spill file failed", telemetry.LogKeyError, err.Error())
	}
	p.batch = nil
}

// remember notes that the batch records failed with the records before next consumed.
func (p *Processor) remember(records []kcl.Record, next int) {
	if len(records) > 0 {
		p.resume = resumePoint{first: positionOf(&records[0]), next: next, set: true}
	}
}

// resumeIndex returns where to start in records: past the part consumed before, when the worker gives the batch
// that failed again.
func (p *Processor) resumeIndex(records []kcl.Record) int {
	r := p.resume
	p.resume = resumePoint{}
	if r.set && len(records) > 0 && positionOf(&records[0]) == r.first {
		return r.next
	}
	return 0
}
