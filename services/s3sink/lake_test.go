package s3sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// lakeFailoverTime is the lease failover time of the tests' workers: short, so that a dead worker's shards move on.
const lakeFailoverTime = 3 * time.Second

// lake is a stream on kinesis-local, a lease table on dynalite and a bucket on moto, with the records put so far.
type lake struct {
	t      *testing.T
	e      *emulator.Emulators
	kc     *kinesis.Client
	s3     *s3.Client
	stream string
	table  string
	bucket string
	logs   *telemetry.SyncBuffer

	mu   sync.Mutex
	sent []string // the payload of every record Kinesis acknowledged
	keys map[string]int
}

func newLake(t *testing.T, shards int) *lake {
	t.Helper()
	e := emulators.Get(t)
	name := regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(t.Name()), "-")
	name = fmt.Sprintf("%s-%d", name[:min(len(name), 40)], time.Now().UnixNano()%1e9)
	l := &lake{t: t, e: e, kc: e.KinesisClient(), s3: e.S3Client(), stream: name, table: name + "-app",
		logs: &telemetry.SyncBuffer{}, keys: map[string]int{}}
	l.bucket = newBucket(t, l.s3)
	emulatortest.CreateStream(t.Context(), t, l.kc, l.stream, shards)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker logs:\n%s", l.logs.String())
		}
	})
	return l
}

// put writes n records with the project's KPL producer (aggregated, over 17 partition keys) and waits until
// Kinesis acknowledged each. A payload names its key and its place among the key's records: "key-03/000012".
func (l *lake) put(n int) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := kpl.New(kpl.Config{StreamName: l.stream, MaxBufferedTime: 20 * time.Millisecond, MaxAggregateBytes: 2048,
		Logger: slog.New(slog.DiscardHandler)}, l.kc)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		l.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range n {
		key := fmt.Sprintf("key-%02d", i%17)
		l.mu.Lock()
		data := fmt.Sprintf("%s/%06d", key, l.keys[key])
		l.keys[key]++
		l.mu.Unlock()
		wg.Add(1)
		if err := p.PutAsync(kpl.Record{PartitionKey: key, Data: []byte(data)}, func(r kpl.Result) {
			defer wg.Done()
			if r.Err != nil {
				failed.Store(r.Err)
				return
			}
			l.mu.Lock()
			l.sent = append(l.sent, data)
			l.mu.Unlock()
		}); err != nil {
			l.t.Fatal(err)
		}
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		l.t.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		l.t.Fatalf("put: %v", err)
	}
}

func (l *lake) sentRecords() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

// sinkConfig is the tests' sink: small objects flushed quickly, so that every shard makes several.
func (l *lake) sinkConfig() Config {
	return Config{Bucket: l.bucket, Prefix: "lake", MaxObjectBytes: 2048, MaxObjectAge: 300 * time.Millisecond,
		SpillDir: l.t.TempDir(), RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
		LeaseLostUploadTimeout: 2 * time.Second}
}

// kclConfig is the tests' worker configuration for id with newProcessor.
func (l *lake) kclConfig(id string, newProcessor func() kcl.Processor, logger *slog.Logger) kcl.Config {
	return kcl.Config{
		StreamName: l.stream, LeaseTableName: l.table, WorkerID: id, NewProcessor: newProcessor,
		CreateLeaseTable: true, FailoverTime: lakeFailoverTime, ShardSyncInterval: time.Second,
		PollIdleInterval: 100 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: time.Second,
		ProcessEmptyBatches: true, ShutdownTimeout: 20 * time.Second, Logger: logger,
	}
}

// workerOptions are what a test changes in a worker: faults in front of S3 or DynamoDB, and its metrics.
type workerOptions struct {
	s3Faults *faultTransport
	ddb      *dynamodb.Client
	metrics  telemetry.Recorder
}

// lakeWorker is a running kcl worker whose processors are the sink.
type lakeWorker struct {
	id     string
	cancel context.CancelFunc
	done   chan error
}

// startWorker runs a worker named id until the test ends (or stop).
func (l *lake) startWorker(id string, o workerOptions) *lakeWorker {
	l.t.Helper()
	logger := slog.New(slog.NewJSONHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("worker_id", id)
	s3Client := l.s3
	if o.s3Faults != nil {
		s3Client = l.e.S3Client(func(opts *s3.Options) { opts.HTTPClient = &http.Client{Transport: o.s3Faults} })
	}
	ddb := o.ddb
	if ddb == nil {
		ddb = l.e.DynamoDBClient()
	}
	cfg := l.sinkConfig()
	cfg.Logger, cfg.Metrics = logger, o.metrics
	newProcessor, err := NewProcessorFunc(cfg, s3Client)
	if err != nil {
		l.t.Fatal(err)
	}
	w, err := kcl.New(l.kclConfig(id, newProcessor, logger), l.kc, ddb)
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lw := &lakeWorker{id: id, cancel: cancel, done: make(chan error, 1)}
	go func() { lw.done <- w.Run(ctx) }()
	l.t.Cleanup(func() { lw.stop(l.t) })
	return lw
}

// stop shuts the worker down gracefully (as SIGTERM does) and waits for it.
func (w *lakeWorker) stop(t *testing.T) {
	t.Helper()
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		if err != nil {
			t.Logf("worker %s stopped: %v", w.id, err)
		}
	case <-time.After(time.Minute):
		t.Errorf("worker %s did not stop within a minute", w.id)
	}
}

// waitLanded waits until every record sent is in an object, and returns the objects.
func (l *lake) waitLanded(timeout time.Duration) []object {
	l.t.Helper()
	var objects []object
	eventually.Succeeds(l.t, timeout, func() error {
		objects = listObjects(l.t, l.s3, l.bucket)
		in := map[string]bool{}
		for _, o := range objects {
			for _, r := range o.Rows {
				in[string(r.Data)] = true
			}
		}
		var missing int
		for _, d := range l.sentRecords() {
			if !in[d] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d records in no object yet (%d objects)", missing, len(l.sentRecords()), len(objects))
		}
		return nil
	})
	return objects
}

// check fails the test unless the objects hold every record sent exactly once, each object whole, and the
// records of each partition key in the order they were sent within every object.
func (l *lake) check(objects []object) {
	l.t.Helper()
	checkObjects(l.t, "lake", objects, l.sentRecords())
	for _, o := range objects {
		last := map[string]int{}
		for _, r := range o.Rows {
			key, n, _ := strings.Cut(string(r.Data), "/")
			i, _ := strconv.Atoi(n)
			if prev, ok := last[key]; ok && i <= prev {
				l.t.Errorf("object %s: %s after %s/%06d: out of order", o.Key, r.Data, key, prev)
			}
			last[key] = i
		}
	}
}

// reshard changes the stream's open shard count and waits until it is ACTIVE again.
func (l *lake) reshard(shards int32) {
	l.t.Helper()
	if _, err := l.kc.UpdateShardCount(context.Background(), &kinesis.UpdateShardCountInput{StreamName: aws.String(l.stream),
		TargetShardCount: aws.Int32(shards), ScalingType: "UNIFORM_SCALING"}); err != nil {
		l.t.Fatal(err)
	}
	emulatortest.WaitStreamActive(context.Background(), l.t, l.kc, l.stream)
}

// leases reads the lease table.
func (l *lake) leases() map[string]kcl.Lease {
	l.t.Helper()
	table, err := kcl.NewLeaseTable(l.e.DynamoDBClient(), l.table)
	if err != nil {
		l.t.Fatal(err)
	}
	ls, err := table.List(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	out := map[string]kcl.Lease{}
	for _, le := range ls {
		out[le.Key] = le
	}
	return out
}

// partition is a DynamoDB transport that fails every call once cut: a worker cut off from its lease table.
type partition struct {
	next http.RoundTripper
	cut  atomic.Bool
}

func (p *partition) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.cut.Load() {
		return nil, errors.New("partitioned from DynamoDB")
	}
	return p.next.RoundTrip(req)
}
