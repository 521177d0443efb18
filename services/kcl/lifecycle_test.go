package kcl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/telemetry"
)

// streamOf creates a stream of shards shards holding recs (perAggregate user records an aggregate) and returns its
// client, its name and a worker configuration over it.
func streamOf(t *testing.T, shards int32, recs []testRecord, perAggregate int) (*kinesis.Client, string, Config) {
	t.Helper()
	kc := testKinesis(t)
	stream := createStream(t, kc, shards)
	putAggregated(t, kc, stream, recs, perAggregate)
	return kc, stream, fastConfig(stream, uniqueName("app"), "worker-a")
}

// runWithRun runs a worker with Run, as a service does. stop cancels Run's context, as SIGTERM does, and returns
// Run's result; the test's clean-up calls it too.
func runWithRun(t *testing.T, cfg Config, kc KinesisAPI) (stop func() error) {
	t.Helper()
	w, err := New(cfg, kc, testDynamo(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	return stop
}

// TestRunStopsGracefullyWhenItsContextEnds: cancelling Run's context (SIGTERM in a service) checkpoints what was
// processed and releases the leases, and Run returns nil.
func TestRunStopsGracefullyWhenItsContextEnds(t *testing.T) {
	// GIVEN a worker run by Run over two shards of records
	recs := makeRecords(400, 20, 50)
	kc, _, cfg := streamOf(t, 2, recs, 50)
	c := newCollector()
	cfg.NewProcessor = func() Processor { return &testProcessor{worker: cfg.WorkerID, c: c} }
	stop := runWithRun(t, cfg, kc)
	c.waitFor(t, len(recs), 60*time.Second)
	// WHEN its context is cancelled
	result := make(chan error, 1)
	go func() { result <- stop() }()
	// THEN Run returns nil after every processor was asked to shut down, and the leases are released
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("Run = %v, want nil after a graceful stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of the cancel")
	}
	if n := c.shutdowns[cfg.WorkerID]; n != 2 {
		t.Errorf("%d ShutdownRequested calls, want 2", n)
	}
	if owners := leaseOwners(t, cfg.LeaseTableName); owners[cfg.WorkerID] != 0 {
		t.Errorf("leases still owned after Run returned: %v", owners)
	}
}

// stuckProcessor never returns from ShutdownRequested until its context ends.
type stuckProcessor struct{ testProcessor }

func (p *stuckProcessor) ShutdownRequested(ctx context.Context, _ ShutdownRequestedInput) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRunStopsAtOnceAfterTheShutdownTimeout: a processor that hangs in ShutdownRequested cannot hold Run past
// ShutdownTimeout; Run says the shutdown was cut short, and the lease is left to expire.
func TestRunStopsAtOnceAfterTheShutdownTimeout(t *testing.T) {
	kc, _, cfg := streamOf(t, 1, makeRecords(10, 2, 10), 10)
	cfg.ShutdownTimeout = 500 * time.Millisecond
	c := newCollector()
	cfg.NewProcessor = func() Processor { return &stuckProcessor{testProcessor{worker: cfg.WorkerID, c: c}} }
	stop := runWithRun(t, cfg, kc)
	c.waitFor(t, 10, 30*time.Second)
	start := time.Now()
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "did not finish within 500ms") {
		t.Fatalf("Run = %v, want the shutdown timeout named", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Run returned %v after the cancel, want about the 500 ms timeout", elapsed)
	}
	if owners := leaseOwners(t, cfg.LeaseTableName); owners[cfg.WorkerID] != 1 {
		t.Errorf("lease owners %v: an abrupt stop must leave the lease to expire, not release it", owners)
	}
}

// restartingProcessor checkpoints its first batch, then fails its second with ErrRestartFromCheckpoint when fail
// says so; it records its lifecycle.
type restartingProcessor struct {
	testProcessor
	log     *lifecycleLog
	batches int
	fail    func(batches int) bool
}

// lifecycleLog records the calls of every processor of a test.
type lifecycleLog struct {
	mu     sync.Mutex
	starts []InitializeInput
	closed int
}

func (p *restartingProcessor) Initialize(ctx context.Context, in InitializeInput) error {
	p.log.mu.Lock()
	p.log.starts = append(p.log.starts, in)
	p.log.mu.Unlock()
	return p.testProcessor.Initialize(ctx, in)
}

func (p *restartingProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if len(in.Records) == 0 {
		return nil
	}
	p.batches++
	if p.fail(p.batches) {
		// What was given since the checkpoint is lost with this processor (a child process died).
		return fmt.Errorf("child exited: %w", ErrRestartFromCheckpoint)
	}
	return p.testProcessor.ProcessRecords(ctx, in)
}

func (p *restartingProcessor) Close() error {
	p.log.mu.Lock()
	p.log.closed++
	p.log.mu.Unlock()
	return nil
}

// TestRestartFromCheckpointDeliversAgainWhatFollowsIt: a processor failing with ErrRestartFromCheckpoint is closed
// and replaced by one that starts at the checkpoint; nothing is skipped.
func TestRestartFromCheckpointDeliversAgainWhatFollowsIt(t *testing.T) {
	// GIVEN one shard of several batches, and processors of which the first fails its second batch
	recs := makeRecords(300, 10, 100)
	kc, _, cfg := streamOf(t, 1, recs, 30)
	cfg.MaxRecordsPerCall = 2 // two aggregates a batch: several batches
	c, life := newCollector(), &lifecycleLog{}
	var made int
	cfg.NewProcessor = func() Processor {
		made++
		first := made == 1
		return &restartingProcessor{testProcessor: testProcessor{worker: cfg.WorkerID, c: c}, log: life,
			fail: func(batches int) bool { return first && batches == 2 }}
	}
	// WHEN a worker reads it
	tw := startWorker(t, cfg, kc, c, nil)
	// THEN every record is delivered, the second processor started at the first one's checkpoint, and the first
	// was closed
	c.waitFor(t, len(recs), 60*time.Second)
	c.checkComplete(t, recs)
	tw.stop(t)
	life.mu.Lock()
	defer life.mu.Unlock()
	if len(life.starts) != 2 || life.starts[1].Checkpoint == CheckpointTrimHorizon {
		t.Fatalf("processors started at %+v, want a second one at the first one's checkpoint", life.starts)
	}
	if life.closed != 2 {
		t.Errorf("%d processors closed, want both (the replaced one, then the last at shutdown)", life.closed)
	}
	if _, dup := c.distinct(); dup != 0 {
		t.Errorf("%d repeated deliveries: the failed batch was never recorded, so none should repeat", dup)
	}
}

// TestRestartsWithoutProgressGiveTheLeaseUp: a processor that restarts every time at the same checkpoint makes the
// worker give the lease up after MaxProcessAttempts, rather than loop.
func TestRestartsWithoutProgressGiveTheLeaseUp(t *testing.T) {
	kc, _, cfg := streamOf(t, 1, makeRecords(20, 2, 10), 10)
	cfg.MaxProcessAttempts = 3
	logs := &telemetry.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	c, life := newCollector(), &lifecycleLog{}
	cfg.NewProcessor = func() Processor {
		return &restartingProcessor{testProcessor: testProcessor{worker: cfg.WorkerID, c: c}, log: life,
			fail: func(int) bool { return true }}
	}
	startWorker(t, cfg, kc, c, nil)
	eventually.Succeeds(t, 30*time.Second, func() error {
		if !strings.Contains(logs.String(), "giving the lease up so another worker retries") {
			return errors.New("the lease was not given up")
		}
		return nil
	})
	life.mu.Lock()
	defer life.mu.Unlock()
	if len(life.starts) != 3 {
		t.Errorf("%d processors started, want MaxProcessAttempts (3)", len(life.starts))
	}
}

// TestCheckpointAtTheLastRecordOfAnEndedShardIsItsEnd: inside ShardEnded, CheckpointAt the last record delivered
// records SHARD_END, as the Java checkpointer does, so the shard's children are read.
func TestCheckpointAtTheLastRecordOfAnEndedShardIsItsEnd(t *testing.T) {
	recs := makeRecords(100, 5, 10)
	kc, stream, cfg := streamOf(t, 1, recs, 10)
	c := newCollector()
	cfg.NewProcessor = func() Processor {
		return &lastRecordCheckpointer{testProcessor: testProcessor{worker: cfg.WorkerID, c: c}}
	}
	startWorker(t, cfg, kc, c, nil)
	c.waitFor(t, len(recs), 30*time.Second)
	splitFirstShard(t, kc, stream)
	more := makeRecords(200, 5, 10)[100:]
	putAggregated(t, kc, stream, more, 10)
	c.waitFor(t, 200, 60*time.Second)
	waitLease(t, mustTable(t, cfg.LeaseTableName), "shardId-000000000000", 30*time.Second, "at SHARD_END",
		func(l Lease, found bool) bool { return found && l.Finished() })
}

// lastRecordCheckpointer checkpoints every batch and, at the shard's end, the last record by its position.
type lastRecordCheckpointer struct {
	testProcessor
	lastSeq string
	lastSub int64
}

func (p *lastRecordCheckpointer) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if n := len(in.Records); n > 0 {
		p.lastSeq, p.lastSub = in.Records[n-1].SequenceNumber, in.Records[n-1].SubSequenceNumber
	}
	return p.testProcessor.ProcessRecords(ctx, in)
}

func (p *lastRecordCheckpointer) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.CheckpointAt(ctx, p.lastSeq, p.lastSub)
}
