package kcl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/kpl"
)

// waitBalanced waits until the open leases are spread with max - min <= 1 over the given workers.
func waitBalanced(t *testing.T, table string, workers []string, timeout time.Duration) map[string]int {
	t.Helper()
	var owners map[string]int
	eventually.Succeeds(t, timeout, func() error {
		owners = leaseOwners(t, table)
		lo, hi := 1<<30, 0
		for _, w := range workers {
			lo, hi = min(lo, owners[w]), max(hi, owners[w])
		}
		if hi-lo > 1 || owners[""] != 0 {
			return fmt.Errorf("leases not balanced: %v", owners)
		}
		return nil
	})
	return owners
}

func TestThreeWorkersEightShards(t *testing.T) {
	for name, mode := range map[string]ReadMode{"polling": ReadModePolling, "fan-out": ReadModeFanOut} {
		t.Run(name, func(t *testing.T) {
			kc := testKinesis(t)
			stream := createStream(t, kc, 8)
			var arn string
			if mode == ReadModeFanOut {
				arn = registerConsumer(t, kc, stream)
			}
			table := uniqueName("app")
			recs := makeRecords(30000, 500, 100)
			entries := putAggregated(t, kc, stream, recs, 500)
			c := newCollector()
			ids := []string{"worker-a", "worker-b", "worker-c"}
			for _, id := range ids {
				cfg := fastConfig(stream, table, id)
				cfg.ReadMode, cfg.ConsumerARN = mode, arn
				startWorker(t, cfg, kc, c, nil)
			}
			c.waitFor(t, len(recs), 90*time.Second)
			c.checkComplete(t, recs)
			owners := waitBalanced(t, table, ids, 20*time.Second)
			_, dups := c.distinct()
			t.Logf("%d user records in %d aggregated Kinesis records: none missing, %d duplicates (lease moves while balancing); leases per worker %v",
				len(recs), entries, dups, owners)
		})
	}
}

func TestKilledWorkerLeasesTakenOverAfterFailover(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 4)
	table := uniqueName("app")
	c := newCollector()
	cfgA := fastConfig(stream, table, "worker-a")
	a := startWorker(t, cfgA, kc, c, nil)
	first := makeRecords(4000, 100, 100)
	putAggregated(t, kc, stream, first, 100)
	c.waitFor(t, len(first), 60*time.Second)
	cfgB := fastConfig(stream, table, "worker-b")
	b := startWorker(t, cfgB, kc, c, nil)
	waitBalanced(t, table, []string{"worker-a", "worker-b"}, 20*time.Second)
	aShards := a.w.HeldLeases()

	killedAt := time.Now()
	a.kill(t)
	// worker-a writes nothing more: its checkpoints now are those at the kill.
	c.mu.Lock()
	repeatsBefore := len(c.repeats)
	c.mu.Unlock()
	atKill := map[string]Lease{}
	for _, shard := range aShards {
		l, _, err := mustTable(t, table).Get(context.Background(), shard)
		if err != nil {
			t.Fatal(err)
		}
		atKill[shard] = l
	}
	second := makeRecords(8000, 100, 100)[4000:] // the same keys, continuing their numbering
	putAggregated(t, kc, stream, second, 100)
	waitHolds(t, b.w, 4, 30*time.Second)
	takeover := time.Since(killedAt)
	// worker-a renewed at most one renewal interval before it was killed; its leases must not move before they went
	// unrenewed for the failover time.
	if earliest := cfgA.FailoverTime - cfgA.FailoverTime/3; takeover < earliest {
		t.Fatalf("leases of a killed worker taken %v after the kill, before they could have expired (%v)", takeover, earliest)
	}
	c.waitFor(t, 8000, 60*time.Second)
	c.checkComplete(t, append(first, second...))
	_, dups := c.distinct()
	// Every repeated delivery since the kill is of a killed worker's shard, after its checkpoint at the kill.
	c.mu.Lock()
	repeats := c.repeats[repeatsBefore:]
	c.mu.Unlock()
	for _, r := range repeats {
		l, ok := atKill[r.shard]
		if !ok {
			t.Fatalf("record %s/%d of %s delivered again after the kill; worker-a did not hold that shard", r.seq, r.sub, r.shard)
		}
		if !isSentinel(l.Checkpoint) && compareExtended(r.seq, r.sub, l.Checkpoint, l.CheckpointSubSequenceNumber) <= 0 {
			t.Fatalf("record %s/%d of %s delivered again after the kill, at or before its checkpoint %s/%d",
				r.seq, r.sub, r.shard, l.Checkpoint, l.CheckpointSubSequenceNumber)
		}
	}
	t.Logf("worker-a killed holding %v; worker-b held all shards %v later (failover %v); none missing, %d duplicates (%d since the kill, all after their shard's checkpoint)",
		aShards, takeover.Round(time.Millisecond), cfgA.FailoverTime, dups, len(repeats))
}

func TestGracefulStopHandsLeasesOver(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 4)
	table := uniqueName("app")
	c := newCollector()
	cfg := func(id string) Config {
		cfg := fastConfig(stream, table, id)
		cfg.FailoverTime = 3 * time.Second
		cfg.RenewInterval = time.Second
		return cfg
	}
	a := startWorker(t, cfg("worker-a"), kc, c, nil)
	recs := makeRecords(2000, 50, 100)
	putAggregated(t, kc, stream, recs, 100)
	c.waitFor(t, len(recs), 60*time.Second)
	b := startWorker(t, cfg("worker-b"), kc, c, nil)
	waitBalanced(t, table, []string{"worker-a", "worker-b"}, 20*time.Second)

	a.stop(t)
	stoppedAt := time.Now()
	owners := leaseOwners(t, table)
	if owners["worker-a"] != 0 {
		t.Fatalf("after a graceful stop worker-a still owns leases: %v", owners)
	}
	waitHolds(t, b.w, 4, 2*time.Second) // two renewal intervals
	takeover := time.Since(stoppedAt)
	more := makeRecords(3000, 50, 100)[2000:]
	putAggregated(t, kc, stream, more, 100)
	c.waitFor(t, 3000, 60*time.Second)
	c.checkComplete(t, append(recs, more...))
	c.mu.Lock()
	shutdowns := c.shutdowns["worker-a"]
	c.mu.Unlock()
	_, dups := c.distinct()
	t.Logf("graceful stop: %d ShutdownRequested calls, worker-b took every lease %v after the stop (renewal interval 1s); %d duplicates",
		shutdowns, takeover.Round(time.Millisecond), dups)
	if dups != 0 {
		t.Fatalf("%d duplicates after a graceful stop, want 0 (every lease was checkpointed before release)", dups)
	}
}

// reshard helpers: each waits for the stream to be active again.
func updateShardCount(t *testing.T, kc *kinesis.Client, stream string, n int32) {
	t.Helper()
	if _, err := kc.UpdateShardCount(context.Background(), &kinesis.UpdateShardCountInput{
		StreamName: &stream, TargetShardCount: aws.Int32(n), ScalingType: ktypes.ScalingTypeUniformScaling,
	}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, kc, stream)
}

func splitFirstShard(t *testing.T, kc *kinesis.Client, stream string) {
	t.Helper()
	s := openShards(t, kc, stream)[0]
	lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := kc.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: &stream, ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, kc, stream)
}

func mergeFirstTwoShards(t *testing.T, kc *kinesis.Client, stream string) {
	t.Helper()
	open := openShards(t, kc, stream)
	if _, err := kc.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: &stream, ShardToMerge: open[0].ShardId, AdjacentShardToMerge: open[1].ShardId,
	}); err != nil {
		t.Fatal(err)
	}
	waitStreamActive(t, kc, stream)
}

func TestReshardingWhileReading(t *testing.T) {
	for name, mode := range map[string]ReadMode{"polling": ReadModePolling, "fan-out": ReadModeFanOut} {
		t.Run(name, func(t *testing.T) {
			kc := testKinesis(t)
			stream := createStream(t, kc, 2)
			var arn string
			if mode == ReadModeFanOut {
				arn = registerConsumer(t, kc, stream)
			}
			table := uniqueName("app")
			c := newCollector()
			for _, id := range []string{"worker-a", "worker-b"} {
				cfg := fastConfig(stream, table, id)
				cfg.ReadMode, cfg.ConsumerARN = mode, arn
				startWorker(t, cfg, kc, c, nil)
			}
			all := makeRecords(6000, 60, 60)
			phases := []struct {
				name    string
				reshard func()
			}{
				{"up to 4 shards", func() { updateShardCount(t, kc, stream, 4) }},
				{"split", func() { splitFirstShard(t, kc, stream) }},
				{"merge", func() { mergeFirstTwoShards(t, kc, stream) }},
				{"down to 2 shards", func() { updateShardCount(t, kc, stream, 2) }},
				{"final writes", func() {}},
			}
			per := len(all) / len(phases)
			for i, ph := range phases {
				putAggregated(t, kc, stream, all[i*per:(i+1)*per], 50)
				// Reshard while the records just written are being read.
				ph.reshard()
			}
			c.waitFor(t, len(all), 120*time.Second)
			c.checkComplete(t, all)

			// No child read before its parents ended.
			out, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: &stream})
			if err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			children := 0
			for _, s := range out.Shards {
				first, read := c.shardFirst[aws.ToString(s.ShardId)]
				for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
					if p == nil || !read {
						continue
					}
					children++
					ended, ok := c.shardEnded[*p]
					if !ok || ended > first {
						t.Fatalf("shard %s read (event %d) before its parent %s ended (event %d, ended %v)",
							aws.ToString(s.ShardId), first, *p, ended, ok)
					}
				}
			}
			dups := 0
			for _, n := range c.deliveries {
				dups += n - 1
			}
			t.Logf("%d records across %d shards (%d parent links checked): none missing, per-key order kept, %d duplicates",
				len(all), len(out.Shards), children, dups)
		})
	}
}

func TestFailingProcessorIsRetriedNothingSkipped(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	table := uniqueName("app")
	c := newCollector()
	var errorsLeft, panicsLeft, stubbornLeft atomic.Int64
	errorsLeft.Store(3)
	panicsLeft.Store(2)
	stubbornLeft.Store(5) // more than MaxProcessAttempts: the lease is given up and retried later
	fail := func(recs []Record) error {
		for _, r := range recs {
			switch {
			case bytes.HasPrefix(r.Data, []byte("key-1|3|")) && errorsLeft.Add(-1) >= 0:
				return errors.New("downstream unavailable")
			case bytes.HasPrefix(r.Data, []byte("key-2|4|")) && panicsLeft.Add(-1) >= 0:
				panic("bad record")
			case bytes.HasPrefix(r.Data, []byte("key-3|5|")) && stubbornLeft.Add(-1) >= 0:
				return errors.New("still failing")
			}
		}
		return nil
	}
	var tws []*testWorker
	for _, id := range []string{"worker-a", "worker-b"} {
		cfg := fastConfig(stream, table, id)
		cfg.MaxProcessAttempts = 3
		tws = append(tws, startWorker(t, cfg, kc, c, fail))
	}
	recs := makeRecords(3000, 30, 80)
	putAggregated(t, kc, stream, recs, 100)
	c.waitFor(t, len(recs), 90*time.Second)
	c.checkComplete(t, recs)
	_, dups := c.distinct()
	c.mu.Lock()
	lost := c.lostCalls["worker-a"] + c.lostCalls["worker-b"]
	c.mu.Unlock()
	if errorsLeft.Load() > 0 || panicsLeft.Load() > 0 || stubbornLeft.Load() > 0 {
		t.Fatalf("failures not all exercised: %d errors, %d panics, %d stubborn left", errorsLeft.Load(), panicsLeft.Load(), stubbornLeft.Load())
	}
	if lost == 0 {
		t.Fatal("a processor failing more than MaxProcessAttempts times did not make the worker give the lease up")
	}
	t.Logf("3 errors, 2 panics and 5 stubborn failures retried; %d lease give-ups; none missing, %d duplicates", lost, dups)
	_ = tws
}

func TestResumeInsideAggregateAfterRestart(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 1)
	table := uniqueName("app")
	recs := makeRecords(300, 3, 50)
	putAggregated(t, kc, stream, recs, 300) // one aggregate of 300 user records
	var mu sync.Mutex
	var firstSeen []Record
	cfg := fastConfig(stream, table, "worker-a")
	cfg.NewProcessor = func() Processor {
		return &funcProcessor{process: func(ctx context.Context, in ProcessRecordsInput) error {
			mu.Lock()
			firstSeen = append(firstSeen, in.Records...)
			mu.Unlock()
			// Processed the first 100 user records only, then "crash".
			return in.Checkpointer.CheckpointAt(ctx, in.Records[99].SequenceNumber, in.Records[99].SubSequenceNumber)
		}}
	}
	a := startWorker(t, cfg, kc, nil, nil)
	waitLease(t, mustTable(t, table), "shardId-000000000000", 30*time.Second, "checkpointed inside the aggregate",
		func(l Lease, _ bool) bool { return l.CheckpointSubSequenceNumber == 99 })
	a.kill(t)
	var resumed []Record
	done := make(chan struct{})
	cfgB := fastConfig(stream, table, "worker-b")
	cfgB.NewProcessor = func() Processor {
		return &funcProcessor{process: func(ctx context.Context, in ProcessRecordsInput) error {
			mu.Lock()
			if resumed == nil {
				resumed = append([]Record(nil), in.Records...)
				close(done)
			}
			mu.Unlock()
			return nil
		}}
	}
	startWorker(t, cfgB, kc, nil, nil)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker-b read nothing")
	}
	if len(resumed) != 200 || resumed[0].SubSequenceNumber != 100 || resumed[0].SequenceNumber != firstSeen[0].SequenceNumber {
		t.Fatalf("resumed with %d records starting at %s/%d, want 200 from sub-sequence 100",
			len(resumed), resumed[0].SequenceNumber, resumed[0].SubSequenceNumber)
	}
}

func mustTable(t testing.TB, name string) *LeaseTable {
	t.Helper()
	lt, err := NewLeaseTable(testDynamo(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return lt
}

// funcProcessor is a Processor whose ProcessRecords is a function; the other calls checkpoint where required.
type funcProcessor struct {
	process func(context.Context, ProcessRecordsInput) error
}

func (p *funcProcessor) Initialize(context.Context, InitializeInput) error { return nil }
func (p *funcProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	return p.process(ctx, in)
}
func (p *funcProcessor) LeaseLost(context.Context) {}
func (p *funcProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}
func (p *funcProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func TestRecordsOutsideShardRangeAreDelivered(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	table := uniqueName("app")
	shards := openShards(t, kc, stream)
	// One aggregate routed to shard 0 holding records whose keys hash into shard 1 too.
	var agg kpl.Aggregator
	want, outside := 0, 0
	for i := range 200 {
		key := fmt.Sprint("k", i)
		agg.Add(key, "", []byte(key+"|0|"))
		want++
		if shardIndexFor(shards, key) != 0 {
			outside++
		}
	}
	// And a corrupt aggregate (checksum broken), delivered whole as one record.
	corrupt := agg.AppendEncoded(nil)
	corrupt[len(corrupt)-1] ^= 0xff
	want++
	putRecordsAll(t, kc, stream, []ktypes.PutRecordsRequestEntry{{
		PartitionKey: aws.String("k0"), ExplicitHashKey: shards[0].HashKeyRange.StartingHashKey, Data: agg.AppendEncoded(nil),
	}, {
		PartitionKey: aws.String("k0"), ExplicitHashKey: shards[0].HashKeyRange.StartingHashKey, Data: corrupt,
	}})
	metrics, emf := newTestMetrics(t)
	c := newCollector()
	cfg := fastConfig(stream, table, "worker-a")
	cfg.Metrics = metrics
	tw := startWorker(t, cfg, kc, c, nil)
	c.waitFor(t, want, 30*time.Second)
	tw.stop(t)
	if err := metrics.Flush(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if outside == 0 || c.outside != outside {
		t.Fatalf("%d records flagged outside the shard range, want %d (all delivered)", c.outside, outside)
	}
	sums := emfSums(t, emf.String())
	if sums[MetricRecordsOutsideShardRange] != float64(outside) || sums[MetricProcessingErrors] != 1 ||
		sums[MetricRecordsProcessed] != float64(want) {
		t.Fatalf("EMF %s = %v, %s = %v, %s = %v; want %d, 1 (the corrupt aggregate), %d", MetricRecordsOutsideShardRange,
			sums[MetricRecordsOutsideShardRange], MetricProcessingErrors, sums[MetricProcessingErrors],
			MetricRecordsProcessed, sums[MetricRecordsProcessed], outside, want)
	}
}

// emfSums adds up, per metric name, the counter values of the EMF lines in out.
func emfSums(t *testing.T, out string) map[string]float64 {
	t.Helper()
	sums := map[string]float64{}
	for line := range strings.SplitSeq(out, "\n") {
		if line == "" {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		for k, v := range doc {
			if f, ok := v.(float64); ok {
				sums[k] += f
			}
		}
	}
	return sums
}

func TestNodeAggregatedRecordsAreAccepted(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	table := uniqueName("app")
	recs := makeRecords(1000, 20, 120)
	type nodeRecord struct {
		PartitionKey    string `json:"partitionKey"`
		ExplicitHashKey string `json:"explicitHashKey,omitempty"`
		Data            string `json:"data"`
	}
	in := make([]nodeRecord, len(recs))
	for i, r := range recs {
		in[i] = nodeRecord{PartitionKey: r.key, Data: base64.StdEncoding.EncodeToString(r.data)}
	}
	body, _ := json.Marshal(in)
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("node", "testdata/node_aggregate.js", filepath.Join(root, "node_modules"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outJSON, err := cmd.Output()
	if err != nil {
		t.Fatalf("node aws-kinesis-agg: %v: %s", err, stderr.String())
	}
	var aggregated []nodeRecord
	if err := json.Unmarshal(outJSON, &aggregated); err != nil {
		t.Fatal(err)
	}
	var entries []ktypes.PutRecordsRequestEntry
	for _, a := range aggregated {
		data, _ := base64.StdEncoding.DecodeString(a.Data)
		if !kpl.IsAggregated(data) {
			t.Fatalf("node output is not a KPL aggregate: %q", strings.TrimSpace(a.Data[:20]))
		}
		e := ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(a.PartitionKey), Data: data}
		if a.ExplicitHashKey != "" {
			e.ExplicitHashKey = aws.String(a.ExplicitHashKey)
		}
		entries = append(entries, e)
	}
	putRecordsAll(t, kc, stream, entries)
	c := newCollector()
	startWorker(t, fastConfig(stream, table, "worker-a"), kc, c, nil)
	c.waitFor(t, len(recs), 30*time.Second)
	c.checkComplete(t, recs)
	t.Logf("%d user records in %d aggregates built by aws-kinesis-agg: all delivered; %d flagged outside their shard's range",
		len(recs), len(aggregated), c.outside)
}
