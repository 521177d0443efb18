package kcl

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// testKinesis returns a Kinesis client for kinesis-local behind the emulator's fan-out proxy, which adds the
// initial-response event kinesis-local leaves out of SubscribeToShard. The proxy closes when the test ends.
func testKinesis(t testing.TB) *kinesis.Client {
	t.Helper()
	emu := testEmulators.Get(t)
	proxy, err := emulator.StartFanOutProxy(emu.KinesisEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proxy.Close(); err != nil {
			t.Error(err)
		}
	})
	return emu.KinesisClient(func(o *kinesis.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
}

// testDynamo returns a DynamoDB client for dynalite whose requests are not aborted when their context ends: dynalite
// 4.0.0 crashes on a request aborted while it reads the body (index.js throws on the request's ECONNRESET), and the
// tests cancel workers abruptly on purpose. The SDK still returns the context's error to the caller at once.
func testDynamo(t testing.TB) *dynamodb.Client {
	hc := &http.Client{Transport: detachedTransport{next: http.DefaultTransport}}
	return testEmulators.Get(t).DynamoDBClient(func(o *dynamodb.Options) { o.HTTPClient = hc })
}

// detachedTransport sends every request to completion, whatever happens to its context.
type detachedTransport struct{ next http.RoundTripper }

func (d detachedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return d.next.RoundTrip(req.WithContext(context.WithoutCancel(req.Context())))
}

// testLogger writes worker logs to stderr when KCL_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("KCL_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// createStream creates a stream and waits until it is active.
func createStream(t testing.TB, kc *kinesis.Client, shards int32) string {
	t.Helper()
	ctx := context.Background()
	name := uniqueName("stream")
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, kc, name)
	return name
}

func waitStreamActive(t testing.TB, kc *kinesis.Client, name string) {
	t.Helper()
	waitActive(t, "stream "+name, func(ctx context.Context) (string, error) {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &name})
		if err != nil {
			return "", err
		}
		return string(out.StreamDescriptionSummary.StreamStatus), nil
	})
}

// registerConsumer registers a fan-out consumer and waits until it is active.
func registerConsumer(t testing.TB, kc *kinesis.Client, stream string) string {
	t.Helper()
	ctx := context.Background()
	d, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: d.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app"),
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.Consumer.ConsumerARN)
	waitActive(t, "consumer "+arn, func(ctx context.Context) (string, error) {
		c, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: &arn})
		if err != nil {
			return "", err
		}
		return string(c.ConsumerDescription.ConsumerStatus), nil
	})
	return arn
}

// waitActive waits until status, the status of a stream or of a stream consumer, is ACTIVE.
func waitActive(t testing.TB, what string, status func(context.Context) (string, error)) {
	t.Helper()
	eventually.Succeeds(t, 30*time.Second, func() error {
		s, err := status(context.Background())
		if err != nil {
			return fmt.Errorf("describe %s: %w", what, err)
		}
		if s != string(ktypes.StreamStatusActive) {
			return fmt.Errorf("%s is %s, want ACTIVE", what, s)
		}
		return nil
	})
}

// testRecord is a user record the tests write: data "key|n" where n counts the records of that key from 0.
type testRecord struct {
	key  string
	n    int
	data []byte
}

// makeRecords returns count records spread over keys partition keys, each padded to about size bytes.
func makeRecords(count, keys, size int) []testRecord {
	recs := make([]testRecord, count)
	next := make([]int, keys)
	for i := range recs {
		k := i % keys
		key := "key-" + strconv.Itoa(k)
		data := fmt.Sprintf("%s|%d|", key, next[k])
		if pad := size - len(data); pad > 0 {
			data += strings.Repeat("x", pad)
		}
		recs[i] = testRecord{key: key, n: next[k], data: []byte(data)}
		next[k]++
	}
	return recs
}

// putAggregated writes records as KPL aggregates, each aggregate holding only records of one shard (routed with the
// shard's starting hash key), in the order given. It returns the number of PutRecords entries.
func putAggregated(t testing.TB, kc *kinesis.Client, stream string, recs []testRecord, perAggregate int) int {
	t.Helper()
	ctx := context.Background()
	shards := openShards(t, kc, stream)
	type bucket struct {
		agg   kpl.Aggregator
		start string
	}
	buckets := make([]*bucket, len(shards))
	for i, s := range shards {
		buckets[i] = &bucket{start: aws.ToString(s.HashKeyRange.StartingHashKey)}
	}
	var entries []ktypes.PutRecordsRequestEntry
	flushEntries := func() {
		for len(entries) > 0 {
			n := min(len(entries), 100)
			putRecordsAll(t, kc, stream, entries[:n])
			entries = entries[n:]
		}
	}
	emit := func(b *bucket, pk string) {
		if b.agg.Count() == 0 {
			return
		}
		entries = append(entries, ktypes.PutRecordsRequestEntry{
			PartitionKey: aws.String(pk), ExplicitHashKey: aws.String(b.start), Data: b.agg.AppendEncoded(nil),
		})
		b.agg.Reset()
	}
	total := 0
	for _, r := range recs {
		i := shardIndexFor(shards, r.key)
		b := buckets[i]
		b.agg.Add(r.key, "", r.data)
		if b.agg.Count() >= perAggregate {
			emit(b, r.key)
			total++
			if len(entries) >= 100 {
				flushEntries()
			}
		}
	}
	for _, b := range buckets {
		if b.agg.Count() > 0 {
			emit(b, "tail")
			total++
		}
	}
	flushEntries()
	_ = ctx
	return total
}

func putRecordsAll(t testing.TB, kc *kinesis.Client, stream string, entries []ktypes.PutRecordsRequestEntry) {
	t.Helper()
	if err := putRecordsRetrying(kc, stream, entries); err != nil {
		t.Fatal(err)
	}
}

// putRecordsRetrying writes entries, retrying those that failed, as a producer does.
func putRecordsRetrying(kc *kinesis.Client, stream string, entries []ktypes.PutRecordsRequestEntry) error {
	for attempt := 0; len(entries) > 0; attempt++ {
		if attempt > 20 {
			return fmt.Errorf("PutRecords: %d entries still failing", len(entries))
		}
		out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
		if err != nil {
			return fmt.Errorf("PutRecords: %w", err)
		}
		var retry []ktypes.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				retry = append(retry, entries[i])
			}
		}
		entries = retry
		if len(entries) > 0 {
			time.Sleep(100 * time.Millisecond) // a pause before the retry, as a producer backs off
		}
	}
	return nil
}

// openShards lists the open shards of a stream, in hash key order.
func openShards(t testing.TB, kc *kinesis.Client, stream string) []ktypes.Shard {
	t.Helper()
	out, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	var open []ktypes.Shard
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool {
		a, _ := kpl.ParseHashKey(aws.ToString(open[i].HashKeyRange.StartingHashKey))
		b, _ := kpl.ParseHashKey(aws.ToString(open[j].HashKeyRange.StartingHashKey))
		return a.Compare(b) < 0
	})
	return open
}

func shardIndexFor(shards []ktypes.Shard, key string) int {
	h := kpl.PartitionKeyHash(key)
	for i, s := range shards {
		if newHashRange(aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey)).contains(h) {
			return i
		}
	}
	return len(shards) - 1
}

// collector gathers what every test processor saw, across workers.
type collector struct {
	mu         sync.Mutex
	event      int              // logical clock of processor calls
	deliveries map[string]int   // data -> times delivered
	keyFirst   map[string][]int // key -> n of each first delivery, in order
	shardFirst map[string]int   // shard -> clock of its first record
	shardEnded map[string]int   // shard -> clock of its ShardEnded checkpoint
	byShard    map[string]int   // shard -> user records delivered
	outside    int              // records flagged OutsideShardRange
	perWorker  map[string]int   // worker id -> records delivered
	ended      map[string]bool  // shards that ended
	lostCalls  map[string]int   // worker -> LeaseLost calls
	shutdowns  map[string]int   // worker -> ShutdownRequested calls
	repeats    []deliveredAt    // where each repeated delivery was read, in order
}

// deliveredAt is the position a record was read at.
type deliveredAt struct {
	shard string
	seq   string
	sub   int64
}

func newCollector() *collector {
	return &collector{
		deliveries: map[string]int{}, keyFirst: map[string][]int{}, shardFirst: map[string]int{},
		shardEnded: map[string]int{}, byShard: map[string]int{}, perWorker: map[string]int{},
		ended: map[string]bool{}, lostCalls: map[string]int{}, shutdowns: map[string]int{},
	}
}

func (c *collector) add(worker string, recs []Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.event++
	for _, r := range recs {
		d := string(r.Data)
		c.deliveries[d]++
		if c.deliveries[d] > 1 {
			c.repeats = append(c.repeats, deliveredAt{shard: r.ShardID, seq: r.SequenceNumber, sub: r.SubSequenceNumber})
		}
		if _, ok := c.shardFirst[r.ShardID]; !ok {
			c.shardFirst[r.ShardID] = c.event
		}
		c.byShard[r.ShardID]++
		c.perWorker[worker]++
		if r.OutsideShardRange {
			c.outside++
		}
		if c.deliveries[d] == 1 {
			parts := strings.SplitN(d, "|", 3)
			if len(parts) >= 2 {
				n, _ := strconv.Atoi(parts[1])
				c.keyFirst[parts[0]] = append(c.keyFirst[parts[0]], n)
			}
		}
	}
}

// distinct returns how many different records were delivered, and how many deliveries were repeats.
func (c *collector) distinct() (distinct, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.deliveries {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

// waitFor waits until want distinct records were delivered.
func (c *collector) waitFor(t testing.TB, want int, timeout time.Duration) {
	t.Helper()
	eventually.Succeeds(t, timeout, func() error {
		if d, _ := c.distinct(); d < want {
			return fmt.Errorf("%d of %d records delivered", d, want)
		}
		return nil
	})
}

// checkComplete fails unless every record of recs was delivered, and checks per-key order of first deliveries.
func (c *collector) checkComplete(t testing.TB, recs []testRecord) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	missing := 0
	for _, r := range recs {
		if c.deliveries[string(r.data)] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records never delivered", missing, len(recs))
	}
	for key, ns := range c.keyFirst {
		for i := 1; i < len(ns); i++ {
			if ns[i] <= ns[i-1] {
				t.Fatalf("key %s: record %d first delivered after record %d", key, ns[i], ns[i-1])
			}
		}
	}
}

// testProcessor records deliveries into a collector and checkpoints after every batch.
type testProcessor struct {
	worker string
	c      *collector
	shard  string
	// fail, when set, may return an error or panic for a batch (called before recording it).
	fail func(recs []Record) error
	// lazy processors checkpoint only in ShutdownRequested and ShardEnded, as one that checkpoints every N records
	// or seconds does between two checkpoints: a lease moved without a graceful hand-off delivers records again.
	lazy bool
	// hangOnShutdown, while set, makes ShutdownRequested wait until its context ends (a processor stuck in it).
	hangOnShutdown *atomic.Bool
}

func (p *testProcessor) Initialize(_ context.Context, in InitializeInput) error {
	p.shard = in.ShardID
	return nil
}

func (p *testProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if p.fail != nil {
		if err := p.fail(in.Records); err != nil {
			return err
		}
	}
	p.c.add(p.worker, in.Records)
	if p.lazy {
		return nil
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *testProcessor) LeaseLost(context.Context) {
	p.c.mu.Lock()
	p.c.lostCalls[p.worker]++
	p.c.mu.Unlock()
}

func (p *testProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err
	}
	p.c.mu.Lock()
	p.c.event++
	p.c.shardEnded[p.shard] = p.c.event
	p.c.ended[p.shard] = true
	p.c.mu.Unlock()
	return nil
}

func (p *testProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	p.c.mu.Lock()
	p.c.shutdowns[p.worker]++
	p.c.mu.Unlock()
	if p.hangOnShutdown != nil && p.hangOnShutdown.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return in.Checkpointer.Checkpoint(ctx)
}

// testWorker is a running worker and the means to stop it.
type testWorker struct {
	id     string
	w      *Worker
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned
	err    error         // Run's result, once exited is closed
}

// kill stops the worker abruptly, like a crash: no checkpoint, no release.
func (tw *testWorker) kill(t testing.TB) {
	t.Helper()
	tw.cancel()
	select {
	case <-tw.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s did not stop after cancel", tw.id)
	}
}

// stop shuts the worker down gracefully.
func (tw *testWorker) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tw.w.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown %s: %v", tw.id, err)
	}
	<-tw.exited
	if tw.err != nil {
		t.Fatalf("worker %s: %v", tw.id, tw.err)
	}
	tw.cancel()
}

// fastConfig is a worker configuration with short intervals so tests stay quick.
func fastConfig(stream, table, id string) Config {
	return Config{
		StreamName: stream, LeaseTableName: table, WorkerID: id,
		CreateLeaseTable: true,
		FailoverTime:     1500 * time.Millisecond,
		PollIdleInterval: 200 * time.Millisecond,
		// Tests reshard: sync often so children get leases soon after their parents end.
		ShardSyncInterval:      2 * time.Second,
		FanOutEndProbeInterval: 500 * time.Millisecond,
		RetryBackoff:           20 * time.Millisecond,
		MaxRetryBackoff:        200 * time.Millisecond,
		Logger:                 testLogger().With("test_worker", id),
	}
}

// startWorker starts a worker whose processors feed c; edit adjusts the configuration.
func startWorker(t testing.TB, cfg Config, kc KinesisAPI, c *collector, fail func([]Record) error) *testWorker {
	t.Helper()
	id := cfg.WorkerID
	if cfg.NewProcessor == nil {
		cfg.NewProcessor = func() Processor { return &testProcessor{worker: id, c: c, fail: fail} }
	}
	w, err := New(cfg, kc, testDynamo(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tw := &testWorker{id: id, w: w, cancel: cancel, exited: make(chan struct{})}
	go func() {
		tw.err = w.run(ctx) // cancelling ctx kills it; Shutdown stops it gracefully
		close(tw.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-tw.exited
	})
	return tw
}

// leaseOwners reads the lease table: open (not finished) leases per owner.
func leaseOwners(t testing.TB, table string) map[string]int {
	t.Helper()
	lt, err := NewLeaseTable(testDynamo(t), table)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := lt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, l := range leases {
		if !l.Finished() {
			owners[l.Owner]++
		}
	}
	return owners
}

// waitHolds waits until w holds n leases.
func waitHolds(t testing.TB, w *Worker, n int, timeout time.Duration) {
	t.Helper()
	eventually.Succeeds(t, timeout, func() error {
		if held := w.HeldLeases(); len(held) < n {
			return fmt.Errorf("worker %s holds %v, want %d leases", w.cfg.WorkerID, held, n)
		}
		return nil
	})
}

// newTestMetrics returns metrics that write their EMF lines to the returned buffer.
func newTestMetrics(t testing.TB) (*telemetry.Metrics, *telemetry.SyncBuffer) {
	t.Helper()
	emf := &telemetry.SyncBuffer{}
	metrics, err := telemetry.NewMetrics(emf, telemetry.MetricsConfig{Namespace: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return metrics, emf
}

// steadyWriter writes records to a stream at a steady rate, per shard, as KPL aggregates (one per shard and tick).
type steadyWriter struct {
	mu      sync.Mutex
	written []testRecord
	stop    chan struct{}
	done    chan struct{}
}

// startSteadyWriter writes, every 250 ms, perTick[i] records of size bytes to open shard i (in hash key order), each
// record's partition key hashing into its shard. It stops at the end of the test at the latest.
func startSteadyWriter(t testing.TB, kc *kinesis.Client, stream string, perTick []int, size int) *steadyWriter {
	t.Helper()
	shards := openShards(t, kc, stream)
	keys := make([][]string, len(shards)) // per shard, 10 partition keys that hash into it
	for i := 0; slices.ContainsFunc(keys, func(ks []string) bool { return len(ks) < 10 }); i++ {
		key := "key-" + strconv.Itoa(i)
		if s := shardIndexFor(shards, key); len(keys[s]) < 10 {
			keys[s] = append(keys[s], key)
		}
	}
	sw := &steadyWriter{stop: make(chan struct{}), done: make(chan struct{})}
	next := map[string]int{}
	tick := time.NewTicker(250 * time.Millisecond)
	go func() {
		defer close(sw.done)
		defer tick.Stop()
		for {
			var entries []ktypes.PutRecordsRequestEntry
			var batch []testRecord
			for i, s := range shards {
				var agg kpl.Aggregator
				for j := range perTick[i] {
					key := keys[i][j%len(keys[i])]
					data := fmt.Sprintf("%s|%d|", key, next[key])
					data += strings.Repeat("x", max(size-len(data), 0))
					next[key]++
					agg.Add(key, "", []byte(data))
					batch = append(batch, testRecord{key: key, n: next[key] - 1, data: []byte(data)})
				}
				if agg.Count() > 0 {
					entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(keys[i][0]),
						ExplicitHashKey: s.HashKeyRange.StartingHashKey, Data: agg.AppendEncoded(nil)})
				}
			}
			if err := putRecordsRetrying(kc, stream, entries); err != nil {
				t.Errorf("steady writer: %v", err)
				return
			}
			sw.mu.Lock()
			sw.written = append(sw.written, batch...)
			sw.mu.Unlock()
			select {
			case <-sw.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { sw.finish() })
	return sw
}

// finish stops the writer and returns every record it wrote.
func (sw *steadyWriter) finish() []testRecord {
	select {
	case <-sw.stop:
	default:
		close(sw.stop)
	}
	<-sw.done
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return slices.Clone(sw.written)
}
