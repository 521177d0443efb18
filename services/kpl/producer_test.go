package kpl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamproc/streamproc/services/telemetry"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// startProducer starts a producer on f; the test must Close it (inside its synctest bubble).
func startProducer(t *testing.T, f *fakeKinesis, cfg Config) *Producer {
	t.Helper()
	cfg.StreamName = "test-stream"
	cfg.Logger = cmp.Or(cfg.Logger, quietLogger)
	p, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Stops the loops even when the test failed early (a bubble must end with no goroutine
	// left); tests that check Close call closeProducer themselves, and a second Close is a no-op.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func closeProducer(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// results collects PutAsync outcomes by record index.
type results struct {
	mu  sync.Mutex
	res map[int]Result
	wg  sync.WaitGroup
}

func newResults() *results { return &results{res: make(map[int]Result)} }

func (r *results) done(i int) func(Result) {
	r.wg.Add(1)
	return func(res Result) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, dup := r.res[i]; dup {
			panic(fmt.Sprintf("record %d: callback called twice", i))
		}
		r.res[i] = res
		r.wg.Done()
	}
}

func (r *results) get(i int) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res[i]
}

// putAll puts the records with PutAsync, failing the test on a refusal.
func putAll(t *testing.T, p *Producer, rs *results, recs []Record, firstIndex int) {
	t.Helper()
	for i, r := range recs {
		if err := p.PutAsync(r, rs.done(firstIndex+i)); err != nil {
			t.Fatalf("PutAsync %d: %v", firstIndex+i, err)
		}
	}
}

func payload(i, n int) []byte {
	b := []byte(fmt.Sprintf("record-%08d-", i))
	for len(b) < n {
		b = append(b, byte('a'+len(b)%26))
	}
	return b[:n]
}

func keyedRecords(n, keys, size int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{PartitionKey: fmt.Sprintf("key-%d", i%keys), Data: payload(i, size)}
	}
	return out
}

func keylessRecords(n, size int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Data: payload(i, size)}
	}
	return out
}

// keyedThenKeyless returns n keyed records (over keys keys) followed by n keyless ones, each
// with its own payload.
func keyedThenKeyless(n, keys, size int) []Record {
	recs := append(keyedRecords(n, keys, size), keylessRecords(n, size)...)
	for i := n; i < len(recs); i++ {
		recs[i].Data = payload(i, size)
	}
	return recs
}

// checkStream reads the fake stream back and checks every record is there once, in a shard
// whose range holds its hash key, and that the records of each key are in put order.
func checkStream(t *testing.T, f *fakeKinesis, recs []Record) {
	t.Helper()
	got, err := f.readBack()
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]int, len(recs))
	for i, r := range recs {
		want[string(r.Data)] = i
	}
	seen := make(map[string]bool, len(recs))
	lastOfKey := make(map[string]int)
	for _, u := range got {
		if !u.inRange {
			// A copy outside its shard's range is dropped by a KCL consumer; it is allowed
			// only as the duplicate of a reshard, so it does not count as delivered.
			continue
		}
		i, ok := want[string(u.Data)]
		if !ok {
			t.Fatalf("unknown record %q in %s", u.Data, u.shard)
		}
		if seen[string(u.Data)] {
			t.Errorf("record %d delivered twice in range", i)
		}
		seen[string(u.Data)] = true
		if k := recs[i].PartitionKey; k != "" {
			if last, ok := lastOfKey[k]; ok && last > i {
				t.Errorf("key %s: record %d stored after record %d", k, last, i)
			}
			lastOfKey[k] = i
		}
	}
	if len(seen) != len(recs) {
		t.Errorf("%d of %d records in the stream within their shard's range", len(seen), len(recs))
	}
}

func TestNewValidatesConfig(t *testing.T) {
	f := newFakeKinesis(1)
	tests := map[string]Config{
		"no stream":             {},
		"aggregate too large":   {StreamName: "s", MaxAggregateBytes: MaxRecordSize},
		"aggregate too small":   {StreamName: "s", MaxAggregateBytes: 10},
		"batch records 501":     {StreamName: "s", MaxBatchRecords: 501},
		"batch bytes 6 MiB":     {StreamName: "s", MaxBatchBytes: 6 << 20},
		"batch bytes below rec": {StreamName: "s", MaxBatchBytes: 1000},
		"negative ttl":          {StreamName: "s", RecordTTL: -time.Second},
		"negative rate":         {StreamName: "s", RateLimitPercent: -1},
		"negative in flight":    {StreamName: "s", MaxInFlight: -1},
		"tiny buffer":           {StreamName: "s", MaxBufferedBytes: 1000},
		"retry max below base":  {StreamName: "s", RetryBaseDelay: time.Second, RetryMaxDelay: time.Millisecond},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg, f); err == nil {
				t.Errorf("New accepted %+v", cfg)
			}
		})
	}
	p, err := New(Config{StreamName: "s"}, f)
	if err != nil {
		t.Fatal(err)
	}
	c := p.cfg
	if c.MaxAggregateBytes != 51200 || c.MaxBatchRecords != 500 || c.MaxBatchBytes != 5<<20 ||
		c.MaxBufferedTime != 100*time.Millisecond || c.RecordTTL != 30*time.Second || c.RateLimitPercent != 150 ||
		c.MaxInFlight != 24 || c.MaxBufferedBytes != 64<<20 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if _, err := New(Config{StreamName: "s"}, nil); err == nil {
		t.Error("nil client accepted")
	}
}

func TestPutAsyncRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		notStarted, err := New(Config{StreamName: "s", Logger: quietLogger}, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := notStarted.PutAsync(Record{Data: []byte("x")}, nil); !errors.Is(err, ErrNotStarted) {
			t.Errorf("before Start: %v, want ErrNotStarted", err)
		}
		p := startProducer(t, f, Config{})
		invalid := func(field string) func(error) bool {
			return func(err error) bool {
				var e *InvalidRecordError
				return errors.As(err, &e) && e.Field == field
			}
		}
		tooLarge := func(err error) bool { return errors.Is(err, ErrRecordTooLarge) }
		tests := map[string]struct {
			rec  Record
			want func(error) bool
		}{
			"data plus key over 1 MiB": {Record{PartitionKey: "k", Data: make([]byte, MaxRecordSize)}, tooLarge},
			"keyless 1 MiB":            {Record{Data: make([]byte, MaxRecordSize)}, tooLarge},
			"key of 257 characters":    {Record{PartitionKey: strings.Repeat("é", 257), Data: []byte("x")}, invalid("PartitionKey")},
			"key not UTF-8":            {Record{PartitionKey: "\xff", Data: []byte("x")}, invalid("PartitionKey")},
			"hash key 2^128":           {Record{ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("x")}, invalid("ExplicitHashKey")},
			"hash key negative":        {Record{ExplicitHashKey: "-1", Data: []byte("x")}, invalid("ExplicitHashKey")},
			"hash key hex":             {Record{ExplicitHashKey: "ff", Data: []byte("x")}, invalid("ExplicitHashKey")},
		}
		for name, tc := range tests { // no t.Run: subtests cannot run inside a synctest bubble
			err := p.PutAsync(tc.rec, func(Result) { t.Errorf("%s: callback called for a refused record", name) })
			if !tc.want(err) {
				t.Errorf("%s: PutAsync = %v", name, err)
			}
		}
		// The largest records Kinesis takes are accepted: 256 characters of key, 1 MiB in all.
		key := strings.Repeat("é", 256)
		res, err := p.Put(t.Context(), Record{PartitionKey: key, Data: make([]byte, MaxRecordSize-len(key))})
		if err != nil {
			t.Fatalf("largest record: %v", err)
		}
		if res.ShardID == "" || res.Attempts != 1 {
			t.Errorf("largest record result %+v", res)
		}
		closeProducer(t, p)
		if err := p.PutAsync(Record{Data: []byte("x")}, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	})
}

func TestShardMappingAndOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(4)
		p := startProducer(t, f, Config{})
		recs := keyedRecords(5000, 300, 100)
		// Explicit hash keys pick their shard whatever the partition key.
		for i := 0; i < len(recs); i += 7 {
			recs[i].ExplicitHashKey = new(big.Int).Lsh(big.NewInt(int64(i%4)), 126).String()
			recs[i].PartitionKey = ""
		}
		rs := newResults()
		putAll(t, p, rs, recs, 0)
		rs.wg.Wait()
		m := p.smap
		for i, r := range recs {
			res := rs.get(i)
			if res.Err != nil {
				t.Fatalf("record %d: %v", i, res.Err)
			}
			if want := m.shards[m.find(UserRecordHashKey(r.PartitionKey, r.ExplicitHashKey))].id; res.ShardID != want {
				t.Fatalf("record %d: shard %s, want %s", i, res.ShardID, want)
			}
		}
		checkStream(t, f, recs)
		// Records with only an explicit hash key got their shard's keyless key as partition key.
		got, _ := f.readBack()
		for _, u := range got {
			if u.ExplicitHashKey != "" && len(u.PartitionKey) > 3 {
				t.Errorf("record with explicit hash key got partition key %q", u.PartitionKey)
			}
		}
		// Every aggregate's explicit hash key is its shard's starting hash key.
		for _, s := range f.shards {
			for _, r := range s.records {
				if r.ExplicitHashKey != s.start.String() {
					t.Errorf("aggregate in %s has explicit hash key %s, want %s", s.id, r.ExplicitHashKey, s.start)
				}
			}
		}
		closeProducer(t, p)
	})
}

func TestKeylessRecordsSpreadWithShortKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(4)
		p := startProducer(t, f, Config{})
		recs := keylessRecords(20000, 100)
		rs := newResults()
		putAll(t, p, rs, recs, 0)
		rs.wg.Wait()
		checkStream(t, f, recs)
		perShard := map[string]int{}
		for i := range recs {
			perShard[rs.get(i).ShardID]++
		}
		for _, s := range f.shards {
			n := perShard[s.id]
			if n < len(recs)/8 {
				t.Errorf("shard %s got %d of %d keyless records: not spread", s.id, n, len(recs))
			}
			for _, r := range s.records {
				urs, err := Deaggregate(nil, r.PartitionKey, r.Data)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range urs {
					if u.PartitionKey != urs[0].PartitionKey || len(u.PartitionKey) > 3 {
						t.Fatalf("aggregate in %s mixes keys or uses a long key: %q, %q", s.id, urs[0].PartitionKey, u.PartitionKey)
					}
				}
			}
		}
		closeProducer(t, p)
	})
}

func TestAggregationLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(1)
		const maxAgg = 4096
		p := startProducer(t, f, Config{MaxAggregateBytes: maxAgg})
		rng := rand.New(rand.NewPCG(1, 2))
		var recs []Record
		for i := range 400 {
			size := 1 + rng.IntN(600)
			if i%50 == 0 {
				size = maxAgg + rng.IntN(3*maxAgg) // too large to aggregate
			}
			recs = append(recs, Record{PartitionKey: fmt.Sprint("k", i%5), Data: payload(i, max(size, 20))})
		}
		rs := newResults()
		putAll(t, p, rs, recs, 0)
		rs.wg.Wait()
		checkStream(t, f, recs)
		raw := 0
		for _, r := range f.shards[0].records {
			if IsAggregated(r.Data) {
				if len(r.Data) > maxAgg {
					t.Errorf("aggregate of %d bytes, limit %d", len(r.Data), maxAgg)
				}
				continue
			}
			raw++
		}
		if raw != 8 {
			t.Errorf("%d records sent unaggregated, want the 8 too large to aggregate", raw)
		}
		for i := 0; i < len(recs); i += 50 {
			if res := rs.get(i); res.SubSequenceNumber != 0 {
				t.Errorf("unaggregated record %d has sub-sequence number %d", i, res.SubSequenceNumber)
			}
		}
		closeProducer(t, p)
	})
}

func TestBatchingLimits(t *testing.T) {
	tests := map[string]struct {
		cfg        Config
		recs       []Record
		maxEntries int
	}{
		"entries per request": {
			cfg: Config{MaxBatchRecords: 3, MaxAggregateBytes: 1000}, recs: keylessRecords(400, 100), maxEntries: 3,
		},
		"bytes per request": {
			// 300 KB records: four would pass 1 MiB, so at most three per request.
			cfg: Config{MaxBatchBytes: MaxRecordSize}, recs: keyedRecords(40, 40, 300_000), maxEntries: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeKinesis(8)
				f.gate = make(chan struct{})
				tc.cfg.MaxInFlight = 1
				p := startProducer(t, f, tc.cfg)
				rs := newResults()
				putAll(t, p, rs, tc.recs, 0)
				close(f.gate)
				rs.wg.Wait()
				checkStream(t, f, tc.recs)
				calls := f.callsCopy()
				full := 0
				for i, c := range calls {
					bytes := 0
					for _, e := range c.entries {
						bytes += len(e.Data) + len(*e.PartitionKey)
					}
					if len(c.entries) > tc.maxEntries || bytes > p.cfg.MaxBatchBytes {
						t.Errorf("request %d: %d entries, %d bytes", i, len(c.entries), bytes)
					}
					if len(c.entries) == tc.maxEntries {
						full++
					}
				}
				if full == 0 {
					t.Errorf("no request reached %d entries: batching does not fill requests", tc.maxEntries)
				}
				closeProducer(t, p)
			})
		})
	}
}

func TestLingerSendsAfterMaxBufferedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		p := startProducer(t, f, Config{MaxBufferedTime: 100 * time.Millisecond})
		start := time.Now()
		rs := newResults()
		putAll(t, p, rs, keyedRecords(3, 1, 10), 0)
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if n := f.callCount(); n != 0 {
			t.Fatalf("%d requests before MaxBufferedTime", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := f.callCount(); n != 1 {
			t.Fatalf("%d requests at MaxBufferedTime, want 1", n)
		}
		rs.wg.Wait()
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("records done after %v, want exactly the linger of 100ms (fake clock)", d)
		}
		for i := range 3 {
			if res := rs.get(i); res.SubSequenceNumber != int64(i) || res.Attempts != 1 {
				t.Errorf("record %d: %+v", i, res)
			}
		}
		closeProducer(t, p)
	})
}

func TestPartialFailureRetriesOnlyFailedEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(4)
		f.gate = make(chan struct{})
		f.failEntry = func(call, entry int, _ types.PutRecordsRequestEntry) string {
			if call == 0 && entry == 0 {
				return "ProvisionedThroughputExceededException"
			}
			return ""
		}
		counts := newCountingSink()
		p := startProducer(t, f, Config{MaxInFlight: 1, Metrics: counts})
		recs := keyedRecords(2000, 50, 100)
		rs := newResults()
		putAll(t, p, rs, recs, 0)
		close(f.gate)
		rs.wg.Wait()
		// The failed entry is sent exactly once more; every other entry exactly once.
		calls := f.callsCopy()
		failed := string(calls[0].entries[0].Data)
		sent := map[string]int{}
		for _, c := range calls {
			for _, e := range c.entries {
				sent[string(e.Data)]++
			}
		}
		for data, n := range sent {
			if want := 1 + btoi(data == failed); n != want {
				t.Errorf("an entry was sent %d times, want %d", n, want)
			}
		}
		retried := 0
		for i := range recs {
			res := rs.get(i)
			if res.Err != nil {
				t.Fatalf("record %d: %v", i, res.Err)
			}
			if res.Attempts == 2 {
				retried++
			} else if res.Attempts != 1 {
				t.Errorf("record %d: %d attempts", i, res.Attempts)
			}
		}
		if retried == 0 || retried == len(recs) {
			t.Errorf("%d records took 2 attempts: want exactly those of the failed aggregate", retried)
		}
		if urs, err := Deaggregate(nil, aws.ToString(calls[0].entries[0].PartitionKey), calls[0].entries[0].Data); err != nil || len(urs) != retried {
			t.Errorf("the failed entry holds %d records (%v); %d records took 2 attempts", len(urs), err, retried)
		}
		checkStream(t, f, recs)
		closeProducer(t, p)
		if got := counts.count(MetricErrorsByCode + "/ProvisionedThroughputExceededException"); got != 1 {
			t.Errorf("ErrorsByCode{PTE} = %v, want 1", got)
		}
		if got := counts.count(MetricUserRecordsPut); got != float64(len(recs)) {
			t.Errorf("UserRecordsPut = %v, want %d", got, len(recs))
		}
		if got := counts.count(MetricUserRecordsReceived); got != float64(len(recs)) {
			t.Errorf("UserRecordsReceived = %v", got)
		}
		checkPutMetrics(t, counts, calls, recs, 100)
	})
}

// checkPutMetrics checks the size, count and timing metrics of a run in which every record
// was acknowledged and the only failed entry was the first of the first request (sent
// again later, unchanged). Kinesis-side figures are computed from the entries the fake
// acknowledged; RetriesPerRecord and BufferingTime are observed once per aggregate.
func checkPutMetrics(t *testing.T, counts *countingSink, calls []fakeCall, recs []Record, recordBytes int) {
	t.Helper()
	if got, want := counts.count(MetricUserRecordsDataPut), float64(len(recs)*recordBytes); got != want {
		t.Errorf("UserRecordsDataPut = %v, want %v (records x bytes)", got, want)
	}
	var acked []types.PutRecordsRequestEntry
	sends := 0
	for i, c := range calls {
		for j, e := range c.entries {
			sends++
			if i == 0 && j == 0 {
				continue // the failed entry
			}
			acked = append(acked, e)
		}
	}
	if got := counts.count(MetricKinesisRecordsPut); got != float64(len(acked)) {
		t.Errorf("KinesisRecordsPut = %v, want %d acknowledged entries", got, len(acked))
	}
	dataPut := 0
	var perEntry []float64
	for _, e := range acked {
		dataPut += len(e.Data) + len(aws.ToString(e.PartitionKey))
		urs, err := Deaggregate(nil, aws.ToString(e.PartitionKey), e.Data)
		if err != nil {
			t.Fatalf("acknowledged entry: %v", err)
		}
		perEntry = append(perEntry, float64(len(urs)))
	}
	if got := counts.count(MetricKinesisRecordsDataPut); got != float64(dataPut) {
		t.Errorf("KinesisRecordsDataPut = %v, want %d (data + partition key of the acknowledged entries)", got, dataPut)
	}
	perKinesis := counts.observed(MetricUserRecordsPerKinesisRecord)
	slices.Sort(perKinesis)
	slices.Sort(perEntry)
	if !slices.Equal(perKinesis, perEntry) {
		t.Errorf("UserRecordsPerKinesisRecord = %v, want the record counts of the acknowledged entries %v", perKinesis, perEntry)
	}
	sum := 0.0
	for _, v := range perKinesis {
		sum += v
	}
	if sum != float64(len(recs)) {
		t.Errorf("sum of UserRecordsPerKinesisRecord = %v, want %d records", sum, len(recs))
	}
	// One observation per aggregate: 1 for the one retried, 0 for the others.
	retries := counts.observed(MetricRetriesPerRecord)
	if len(retries) != len(acked) {
		t.Errorf("RetriesPerRecord has %d observations, want one per aggregate (%d)", len(retries), len(acked))
	}
	slices.Sort(retries)
	if want := float64(sends - len(acked)); len(retries) == 0 || retries[len(retries)-1] != want || (len(retries) > 1 && retries[len(retries)-2] != 0) {
		t.Errorf("RetriesPerRecord = %v, want 0 for every aggregate but the failed one (%v)", retries, want)
	}
	buffering := counts.observed(MetricBufferingTime)
	if len(buffering) != len(acked) {
		t.Errorf("BufferingTime has %d observations, want one per aggregate (%d)", len(buffering), len(acked))
	}
	for _, v := range buffering {
		if v < 0 || v > millis(DefaultMaxBufferedTime) {
			t.Errorf("BufferingTime %v ms, want within [0, %v]", v, millis(DefaultMaxBufferedTime))
		}
	}
}

func TestRetriesKeepPerKeyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		rng := rand.New(rand.NewPCG(7, 7))
		var mu sync.Mutex
		f.failEntry = func(_, _ int, _ types.PutRecordsRequestEntry) string {
			mu.Lock()
			defer mu.Unlock()
			if rng.IntN(100) < 30 {
				return []string{"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}[rng.IntN(3)]
			}
			return ""
		}
		p := startProducer(t, f, Config{MaxAggregateBytes: 600})
		recs := keyedRecords(3000, 4, 40)
		rs := newResults()
		// Arrive over time, so many aggregates per shard are queued and in flight.
		for i := 0; i < len(recs); i += 100 {
			putAll(t, p, rs, recs[i:i+100], i)
			time.Sleep(10 * time.Millisecond)
		}
		rs.wg.Wait()
		for i := range recs {
			if err := rs.get(i).Err; err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		checkStream(t, f, recs) // checks per-key order
		// No request ever carried two keyed aggregates of one shard.
		for i, c := range f.callsCopy() {
			seen := map[string]bool{}
			for _, e := range c.entries {
				if seen[*e.ExplicitHashKey] {
					t.Fatalf("request %d carries two aggregates for the shard at %s", i, *e.ExplicitHashKey)
				}
				seen[*e.ExplicitHashKey] = true
			}
		}
		closeProducer(t, p)
	})
}

func TestRecordTTLExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(1)
		f.failEntry = func(int, int, types.PutRecordsRequestEntry) string { return "ProvisionedThroughputExceededException" }
		counts := newCountingSink()
		p := startProducer(t, f, Config{RecordTTL: 2 * time.Second, Metrics: counts})
		start := time.Now()
		res, err := p.Put(t.Context(), Record{PartitionKey: "k", Data: []byte("late")})
		elapsed := time.Since(start)
		if !errors.Is(err, ErrRecordExpired) || !errors.Is(res.Err, ErrRecordExpired) {
			t.Fatalf("Put = %v, want ErrRecordExpired", err)
		}
		var pre *PutRecordError
		if !errors.As(err, &pre) || pre.Code != "ProvisionedThroughputExceededException" {
			t.Errorf("expired error %v does not wrap the last put error", err)
		}
		if elapsed < 2*time.Second || elapsed > 2*time.Second+p.cfg.MaxBufferedTime+p.cfg.RetryMaxDelay {
			t.Errorf("expired after %v, want RecordTTL (2s) plus at most linger and one backoff", elapsed)
		}
		if res.Attempts < 3 {
			t.Errorf("only %d attempts within the TTL", res.Attempts)
		}
		closeProducer(t, p)
		if got := counts.count(MetricUserRecordExpired); got != 1 {
			t.Errorf("UserRecordExpired = %v, want 1", got)
		}
	})
}

func TestBufferFullRefusesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		f.gate = make(chan struct{}) // Kinesis stalls
		counts := newCountingSink()
		p := startProducer(t, f, Config{MaxBufferedBytes: MaxRecordSize, Metrics: counts})
		rs := newResults()
		accepted := 0
		start := time.Now()
		for i := 0; ; i++ {
			err := p.PutAsync(Record{PartitionKey: fmt.Sprint(i), Data: make([]byte, 100_000)}, rs.done(i))
			if errors.Is(err, ErrBufferFull) {
				rs.wg.Done() // the refused record's callback will never run
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
		}
		if time.Since(start) != 0 {
			t.Errorf("refusal took %v of fake time: PutAsync blocked", time.Since(start))
		}
		if accepted != 10 {
			t.Errorf("accepted %d records of 100 KB into a 1 MiB buffer, want 10", accepted)
		}
		time.Sleep(time.Second)
		if err := p.PutAsync(Record{Data: make([]byte, 100_000)}, nil); !errors.Is(err, ErrBufferFull) {
			t.Errorf("buffer grew while Kinesis stalled: %v", err)
		}
		close(f.gate)
		rs.wg.Wait()
		if err := p.PutAsync(Record{Data: make([]byte, 100_000)}, nil); err != nil {
			t.Errorf("after the buffer drained: %v", err)
		}
		closeProducer(t, p)
		if got := counts.count(MetricUserRecordsRejectedBufferFull); got != 2 {
			t.Errorf("UserRecordsRejectedBufferFull = %v, want 2", got)
		}
	})
}

func TestCloseFlushesBeforeLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(3)
		p := startProducer(t, f, Config{MaxBufferedTime: time.Hour})
		recs := keyedThenKeyless(500, 20, 50)
		rs := newResults()
		putAll(t, p, rs, recs, 0)
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Close took %v: it waited for the linger", d)
		}
		for i := range recs {
			if err := rs.get(i).Err; err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		checkStream(t, f, recs)
	})
}

func TestCloseDeadlineFailsUnsentRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		f.gate = make(chan struct{}) // never opens
		p := startProducer(t, f, Config{})
		rs := newResults()
		putAll(t, p, rs, keyedRecords(100, 10, 100), 0)
		time.Sleep(time.Second) // some requests in flight, stalled
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := p.Close(ctx)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want the deadline error", err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("Close returned after %v, past its 200ms deadline", d)
		}
		rs.wg.Wait()
		for i := range 100 {
			if err := rs.get(i).Err; !errors.Is(err, ErrClosed) {
				t.Errorf("record %d: %v, want ErrClosed", i, err)
			}
		}
	})
}

func TestFlushWaitsForRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		p := startProducer(t, f, Config{MaxBufferedTime: time.Hour})
		rs := newResults()
		recs := keylessRecords(300, 100)
		putAll(t, p, rs, recs, 0)
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			if res := rs.get(i); res.ShardID == "" || res.Err != nil {
				t.Fatalf("record %d not finished when Flush returned: %+v", i, res)
			}
		}
		// Flush with nothing buffered returns at once.
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A Flush cut short by its context says so.
		gate := make(chan struct{})
		f.setGate(gate)
		putAll(t, p, rs, keylessRecords(1, 100), len(recs))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := p.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Flush against a stalled Kinesis = %v", err)
		}
		close(gate)
		closeProducer(t, p)
	})
}

func TestRequestErrors(t *testing.T) {
	serverError := &smithy.GenericAPIError{Code: "InternalFailure", Message: "injected", Fault: smithy.FaultServer}
	http500 := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}}, Err: errors.New("injected 500")}}
	tests := map[string]struct {
		err       error
		retried   bool
		errorCode string
	}{
		"internal failure":   {serverError, true, "InternalFailure"},
		"throttled":          {&types.ProvisionedThroughputExceededException{Message: ptr("slow down")}, true, "ProvisionedThroughputExceededException"},
		"connection reset":   {errInjectedReset, true, ErrorCodeTransport},
		"HTTP 500":           {http500, true, ErrorCodeTransport},
		"stream not found":   {&types.ResourceNotFoundException{Message: ptr("no stream")}, false, "ResourceNotFoundException"},
		"access denied":      {&smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}, false, "AccessDeniedException"},
		"KMS key disabled":   {&types.KMSDisabledException{Message: ptr("disabled")}, false, "KMSDisabledException"},
		"KMS throttling":     {&types.KMSThrottlingException{Message: ptr("kms")}, true, "KMSThrottlingException"},
		"limit exceeded":     {&types.LimitExceededException{Message: ptr("limit")}, true, "LimitExceededException"},
		"invalid argument":   {&types.InvalidArgumentException{Message: ptr("bad")}, false, "InvalidArgumentException"},
		"deadline of a call": {context.DeadlineExceeded, true, ErrorCodeTransport},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeKinesis(2)
				f.failRequest = func(call int) error {
					if call == 0 {
						return tc.err
					}
					return nil
				}
				counts := newCountingSink()
				p := startProducer(t, f, Config{Metrics: counts})
				recs := keyedRecords(200, 20, 100)
				rs := newResults()
				putAll(t, p, rs, recs, 0)
				rs.wg.Wait()
				for i := range recs {
					res := rs.get(i)
					if tc.retried {
						if res.Err != nil || res.Attempts != 2 {
							t.Fatalf("record %d: %+v, want success on the second attempt", i, res)
						}
					} else if res.Err == nil || !errors.Is(res.Err, tc.err) {
						t.Fatalf("record %d: %v, want the request's error", i, res.Err)
					}
				}
				if tc.retried {
					checkStream(t, f, recs)
				}
				closeProducer(t, p)
				if counts.count(MetricErrorsByCode+"/"+tc.errorCode) == 0 {
					t.Errorf("ErrorsByCode{%s} not counted: %v", tc.errorCode, counts.snapshot())
				}
			})
		})
	}
}

func TestShardMapRefreshOnReshard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(2)
		counts := newCountingSink()
		p := startProducer(t, f, Config{ShardMapRefreshInterval: time.Hour, Metrics: counts})
		recs := keyedThenKeyless(3000, 500, 80)
		rs := newResults()
		// Wave 1 on the old map.
		putAll(t, p, rs, recs[:1000], 0)
		putAll(t, p, rs, recs[3000:4000], 3000)
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.reshard(4) // 2 -> 4: both shards close, four children open
		listsBefore := f.listCount()
		// Wave 2: predicted with the stale map, lands in children, must be re-settled.
		putAll(t, p, rs, recs[1000:2000], 1000)
		putAll(t, p, rs, recs[4000:5000], 4000)
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if f.listCount() == listsBefore {
			t.Fatal("no ListShards after puts landed in unexpected shards")
		}
		newIDs := map[string]bool{}
		for _, s := range f.shards[2:] {
			newIDs[s.id] = true
		}
		// Wave 3: follows the new map from the start.
		putAll(t, p, rs, recs[2000:3000], 2000)
		putAll(t, p, rs, recs[5000:], 5000)
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		rs.wg.Wait()
		for i := range recs {
			res := rs.get(i)
			if res.Err != nil {
				t.Fatalf("record %d: %v", i, res.Err)
			}
			if ((i >= 1000 && i < 3000) || i >= 4000) && !newIDs[res.ShardID] {
				t.Fatalf("record %d after the reshard acknowledged in %s, not a child shard", i, res.ShardID)
			}
		}
		checkStream(t, f, recs)
		// Wave 3 follows the new map: each record put once. Some of wave 2 were re-put.
		remapped := 0
		for i := range recs {
			attempts := rs.get(i).Attempts
			switch {
			case (i >= 2000 && i < 3000) || i >= 5000:
				if attempts != 1 {
					t.Errorf("record %d after the refresh took %d attempts", i, attempts)
				}
			case (i >= 1000 && i < 2000) || (i >= 4000 && i < 5000):
				if attempts > 1 {
					remapped++
				}
			}
		}
		if remapped == 0 {
			t.Error("no record of wave 2 was re-put: the stale map went unnoticed")
		}
		// The periodic refresh runs too.
		lists := f.listCount()
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		if f.listCount() == lists {
			t.Error("no periodic ListShards after ShardMapRefreshInterval")
		}
		closeProducer(t, p)
		checkStoredMetrics(t, counts, f, len(recs), 80)
	})
}

func TestRateLimitPerShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKinesis(1)
		p := startProducer(t, f, Config{RateLimitPercent: 100, MaxBufferedBytes: 16 << 20})
		// 4 MiB for one shard: at 1 MiB/s (after the first second's burst) it takes 3 s or more.
		recs := keyedRecords(4*1024, 64, 1024)
		rs := newResults()
		start := time.Now()
		putAll(t, p, rs, recs, 0)
		rs.wg.Wait()
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("4 MiB through one shard in %v of fake time: rate limit not applied", d)
		}
		checkStream(t, f, recs)
		closeProducer(t, p)
	})
}

func ptr(s string) *string { return &s }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkStoredMetrics checks the put metrics against what the fake stored: every entry Kinesis acknowledged, re-put
// or not, counts as a Kinesis record with its data and partition key bytes, and each of the n records of
// recordBytes bytes counts once as put.
func checkStoredMetrics(t *testing.T, counts *countingSink, f *fakeKinesis, n, recordBytes int) {
	t.Helper()
	f.mu.Lock()
	entries, entryBytes := 0, 0
	for _, s := range f.shards {
		for _, r := range s.records {
			entries++
			entryBytes += len(r.Data) + len(r.PartitionKey)
		}
	}
	f.mu.Unlock()
	sum := 0.0
	for _, v := range counts.observed(MetricUserRecordsPerKinesisRecord) {
		sum += v
	}
	got := map[string]float64{
		MetricUserRecordsPut: counts.count(MetricUserRecordsPut), MetricUserRecordsDataPut: counts.count(MetricUserRecordsDataPut),
		MetricKinesisRecordsPut: counts.count(MetricKinesisRecordsPut), MetricKinesisRecordsDataPut: counts.count(MetricKinesisRecordsDataPut),
		"sum of " + MetricUserRecordsPerKinesisRecord: sum,
	}
	want := map[string]float64{
		MetricUserRecordsPut: float64(n), MetricUserRecordsDataPut: float64(n * recordBytes),
		MetricKinesisRecordsPut: float64(entries), MetricKinesisRecordsDataPut: float64(entryBytes),
		"sum of " + MetricUserRecordsPerKinesisRecord: float64(n),
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v; want %v", name, got[name], w)
		}
	}
}

// countingSink is a telemetry.Recorder that sums counters by name (and name/ErrorCode).
type countingSink struct {
	mu     sync.Mutex
	counts map[string]float64
	obs    map[string][]float64
}

func newCountingSink() *countingSink {
	return &countingSink{counts: map[string]float64{}, obs: map[string][]float64{}}
}

func (c *countingSink) Add(name string, _ telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range dims {
		name += "/" + d.Value
	}
	c.counts[name] += v
}

func (c *countingSink) Observe(name string, _ telemetry.Unit, v float64, _ ...telemetry.Dimension) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.obs[name] = append(c.obs[name], v)
}

func (c *countingSink) count(name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name]
}

// observed returns a copy of the values observed under name.
func (c *countingSink) observed(name string) []float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.obs[name])
}

func (c *countingSink) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]float64{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}
