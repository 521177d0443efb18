package kcl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamproc/streamproc/internal/eventually"
)

// hungSubscribeKinesis is kinesis-local for every call but SubscribeToShard, which goes to a server that accepts the
// request and never answers.
type hungSubscribeKinesis struct {
	*kinesis.Client
	hung *kinesis.Client
}

func (k hungSubscribeKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	return k.hung.SubscribeToShard(ctx, in, optFns...)
}

// startHungServer starts a 127.0.0.1 server that holds every request open until the client goes away or the test
// ends; arrived receives one value per request.
func startHungServer(t *testing.T) (url string, arrived <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 16)
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case ch <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(quit) })
		srv.Close()
	})
	return srv.URL, ch
}

func TestHungSubscribeToShardIsCancelled(t *testing.T) {
	tests := map[string]struct {
		// stop ends the worker; it returns once Run must have returned.
		stop func(t *testing.T, tw *testWorker)
	}{
		"graceful shutdown": {stop: func(t *testing.T, tw *testWorker) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tw.w.Shutdown(ctx); err != nil {
				t.Errorf("shutdown with SubscribeToShard hung: %v", err)
			}
		}},
		"short shutdown, then cancel": {stop: func(t *testing.T, tw *testWorker) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_ = tw.w.Shutdown(ctx) // may time out: the run context is cancelled next
			tw.cancel()
		}},
		"cancel": {stop: func(t *testing.T, tw *testWorker) { tw.cancel() }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := testKinesis(t)
			stream := createStream(t, kc, 1)
			url, arrived := startHungServer(t)
			hung := testEmulators.Get(t).KinesisClient(func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
			cfg := fastConfig(stream, uniqueName("app"), "worker-a")
			cfg.ReadMode, cfg.ConsumerARN = ReadModeFanOut, "arn:aws:kinesis:us-east-1:000000000000:stream/"+stream+"/consumer/app:1"
			cfg.NewProcessor = func() Processor { return &testProcessor{worker: cfg.WorkerID, c: newCollector()} }
			w, err := New(cfg, hungSubscribeKinesis{Client: kc, hung: hung}, testDynamo(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			tw := &testWorker{id: cfg.WorkerID, w: w, cancel: cancel, exited: make(chan struct{})}
			go func() {
				tw.err = w.run(ctx) // cancelling ctx kills it; Shutdown stops it gracefully
				close(tw.exited)
			}()
			select {
			case <-arrived:
			case <-time.After(20 * time.Second):
				cancel()
				t.Fatal("no SubscribeToShard call within 20 s")
			}
			tc.stop(t, tw)
			select {
			case <-tw.exited:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return 10 s after the stop while SubscribeToShard hung")
			}
			cancel()
		})
	}
}

// hangingTransport passes requests on (detached from their context, see testDynamo) until hang is set; from then on
// every request hangs until its context ends or the test is over.
type hangingTransport struct {
	next http.RoundTripper
	hang atomic.Bool
	quit chan struct{}
}

func (h *hangingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.hang.Load() {
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-h.quit:
			return nil, errors.New("test over")
		}
	}
	return h.next.RoundTrip(req.WithContext(context.WithoutCancel(req.Context())))
}

// blockingProcessor blocks in its first ProcessRecords until its ctx ends, then tries to checkpoint.
type blockingProcessor struct {
	started   chan<- struct{}
	cancelled chan<- error // Checkpoint's error after ctx ended
	lost      chan<- struct{}
}

func (p *blockingProcessor) Initialize(context.Context, InitializeInput) error { return nil }
func (p *blockingProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	p.started <- struct{}{}
	<-ctx.Done()
	cpCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.cancelled <- in.Checkpointer.Checkpoint(cpCtx)
	return ctx.Err()
}
func (p *blockingProcessor) LeaseLost(context.Context) { p.lost <- struct{}{} }
func (p *blockingProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *blockingProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// startBlockedWorker starts one polling worker on a fresh one-shard stream holding a few records, with its
// DynamoDB requests going through ddb, and waits until its processor blocks in ProcessRecords.
func startBlockedWorker(t *testing.T, ddb *dynamodb.Client) (cfg Config, stream string, checkpointErr <-chan error, lost <-chan struct{}) {
	t.Helper()
	kc := testKinesis(t)
	stream = createStream(t, kc, 1)
	putAggregated(t, kc, stream, makeRecords(10, 2, 50), 5)
	started, cpErr, lostCh := make(chan struct{}, 4), make(chan error, 4), make(chan struct{}, 4)
	cfg = fastConfig(stream, uniqueName("app"), "worker-a")
	cfg.NewProcessor = func() Processor { return &blockingProcessor{started: started, cancelled: cpErr, lost: lostCh} }
	w, err := New(cfg, kc, ddb)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		_ = w.run(ctx)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("processor not called within 30 s")
	}
	return cfg, stream, cpErr, lostCh
}

// waitLeaseLost waits until the processor saw its ctx end and LeaseLost was called, within limit.
func waitLeaseLost(t *testing.T, limit time.Duration, checkpointErr <-chan error, lost <-chan struct{}) error {
	t.Helper()
	deadline := time.After(limit)
	var err error
	select {
	case err = <-checkpointErr:
	case <-deadline:
		t.Fatalf("processor's ctx not cancelled within %v of the lease's loss", limit)
	}
	select {
	case <-lost:
	case <-deadline:
		t.Fatalf("LeaseLost not called within %v of the lease's loss", limit)
	}
	return err
}

func TestLeaseLostWhenDynamoDBHangs(t *testing.T) {
	sw := &hangingTransport{next: http.DefaultTransport, quit: make(chan struct{})}
	t.Cleanup(func() { close(sw.quit) })
	ddb := testEmulators.Get(t).DynamoDBClient(func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: sw} })
	cfg, _, checkpointErr, lost := startBlockedWorker(t, ddb)

	sw.hang.Store(true)
	hungAt := time.Now()
	// The last successful write was at most one renewal interval before the hang.
	waitLeaseLost(t, cfg.FailoverTime+time.Second, checkpointErr, lost)
	t.Logf("with every DynamoDB call hung, the lease was lost %v later (failover time %v)",
		time.Since(hungAt).Round(time.Millisecond), cfg.FailoverTime)
}

func TestLeaseStolenStopsProcessorWithoutCheckpoint(t *testing.T) {
	cfg, _, checkpointErr, lost := startBlockedWorker(t, testDynamo(t))
	ctx := context.Background()
	table := mustTable(t, cfg.LeaseTableName)
	l, found, err := table.Get(ctx, "shardId-000000000000")
	if err != nil || !found {
		t.Fatalf("get lease: %v, found %v", err, found)
	}
	if err := table.take(ctx, &l, "thief"); err != nil {
		t.Fatalf("steal lease: %v", err)
	}
	stolenAt := time.Now()
	err = waitLeaseLost(t, cfg.FailoverTime/3+time.Second, checkpointErr, lost)
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Checkpoint after the lease was stolen = %v, want ErrLeaseLost", err)
	}
	t.Logf("stolen lease noticed %v later (renewal interval %v)", time.Since(stolenAt).Round(time.Millisecond), cfg.FailoverTime/3)
	after, _, err := table.Get(ctx, l.Key)
	if err != nil {
		t.Fatal(err)
	}
	if after.Owner != "thief" || after.Checkpoint != l.Checkpoint || after.CheckpointSubSequenceNumber != l.CheckpointSubSequenceNumber {
		t.Fatalf("lease after the loss = owner %q checkpoint %s/%d, want thief's at %s/%d",
			after.Owner, after.Checkpoint, after.CheckpointSubSequenceNumber, l.Checkpoint, l.CheckpointSubSequenceNumber)
	}
}

// idleReadCounter is a Kinesis client that counts the GetRecords calls that returned no record.
type idleReadCounter struct {
	KinesisAPI
	idle atomic.Int64
}

func (k *idleReadCounter) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.KinesisAPI.GetRecords(ctx, in, optFns...)
	if err == nil && len(out.Records) == 0 {
		k.idle.Add(1)
	}
	return out, err
}

// idleShardProcessor counts the records and the empty batches it gets. Like a processor that checkpoints every N
// records or N seconds after a burst of fewer than N records, it checkpoints only when the shard is idle.
type idleShardProcessor struct {
	mu               sync.Mutex
	delivered, empty int
	lastSeq          string
	lastSub          int64
}

func (p *idleShardProcessor) process(ctx context.Context, in ProcessRecordsInput) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(in.Records) > 0 {
		p.delivered += len(in.Records)
		last := in.Records[len(in.Records)-1]
		p.lastSeq, p.lastSub = last.SequenceNumber, last.SubSequenceNumber
		return nil
	}
	p.empty++
	return in.Checkpointer.Checkpoint(ctx)
}

func TestEmptyBatchesOnIdleShard(t *testing.T) {
	tests := map[string]struct {
		processEmpty bool
	}{
		"delivered when enabled":   {processEmpty: true},
		"not delivered by default": {processEmpty: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a one-shard stream holding a few records, read by a worker whose processor checkpoints only
			// on empty batches
			kc := testKinesis(t)
			stream := createStream(t, kc, 1)
			recs := makeRecords(20, 2, 50)
			putAggregated(t, kc, stream, recs, 5)
			reads := &idleReadCounter{KinesisAPI: kc}
			proc := &idleShardProcessor{}
			cfg := fastConfig(stream, uniqueName("app"), "worker-a")
			cfg.ProcessEmptyBatches = tc.processEmpty
			cfg.NewProcessor = func() Processor { return &funcProcessor{process: proc.process} }
			startWorker(t, cfg, reads, nil, nil)
			// WHEN every record was delivered, and three reads after that found the shard idle; a read follows the
			// processing of the batch before it, so at least two empty batches were processed by then, if any
			eventually.Succeeds(t, 30*time.Second, func() error {
				proc.mu.Lock()
				defer proc.mu.Unlock()
				if proc.delivered != len(recs) {
					return fmt.Errorf("%d of %d records delivered", proc.delivered, len(recs))
				}
				return nil
			})
			idleBefore := reads.idle.Load()
			eventually.Succeeds(t, 30*time.Second, func() error {
				if n := reads.idle.Load() - idleBefore; n < 3 {
					return fmt.Errorf("%d idle reads after the records, want 3", n)
				}
				return nil
			})
			// THEN empty batches were delivered, and checkpointed, only with ProcessEmptyBatches
			proc.mu.Lock()
			gotEmpty, seq, sub := proc.empty, proc.lastSeq, proc.lastSub
			proc.mu.Unlock()
			checkIdleCheckpoint(t, cfg.LeaseTableName, tc.processEmpty, gotEmpty, seq, sub)
		})
	}
}

// checkIdleCheckpoint checks the shard's checkpoint after gotEmpty empty batches: at the last record (seq, sub) when
// empty batches are processed, still TRIM_HORIZON when they are not.
func checkIdleCheckpoint(t *testing.T, table string, processEmpty bool, gotEmpty int, seq string, sub int64) {
	t.Helper()
	l, _, err := mustTable(t, table).Get(context.Background(), "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if !processEmpty {
		if gotEmpty != 0 || l.Checkpoint != CheckpointTrimHorizon {
			t.Fatalf("without ProcessEmptyBatches: %d empty batches, checkpoint %s; want none, TRIM_HORIZON", gotEmpty, l.Checkpoint)
		}
		return
	}
	if gotEmpty == 0 {
		t.Fatal("no empty batch delivered in three idle reads")
	}
	if l.Checkpoint != seq || l.CheckpointSubSequenceNumber != sub {
		t.Fatalf("checkpoint after idle = %s/%d, want the last record %s/%d", l.Checkpoint, l.CheckpointSubSequenceNumber, seq, sub)
	}
	t.Logf("%d empty batches in three idle reads; checkpoint at the last record", gotEmpty)
}
