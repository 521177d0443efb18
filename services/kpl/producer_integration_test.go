package kpl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
)

// TestKinesisLocal runs the producer against kinesis-local (one emulator for all subtests,
// one stream each) and reads every record back with GetRecords.
func TestKinesisLocal(t *testing.T) {
	emu := emulatortest.StartForTest(t, emulator.Options{Kinesis: true, KinesisEnv: []string{"UPDATE_SHARD_COUNT_DURATION=300ms"}})
	t.Run("put and read back", func(t *testing.T) { testPutAndReadBack(t, emu) })
	t.Run("reshard during load", func(t *testing.T) { testReshardDuringLoad(t, emu) })
	t.Run("faults", func(t *testing.T) { testFaults(t, emu) })
	t.Run("record past its TTL fails", func(t *testing.T) { testRecordPastTTLFails(t, emu) })
}

// testPutAndReadBack puts keyed and keyless records and finds each in the stream where its
// Result says, in its shard's range and in per-key order.
func testPutAndReadBack(t *testing.T, emu *emulator.Emulators) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rec := &putRecorder{next: http.DefaultTransport}
	client := emu.KinesisClient(func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: rec} })
	stream := createStream(ctx, t, client, "put-read", 3)
	recs := keyedThenKeyless(10_000, 500, 100)
	p := startLocalProducer(ctx, t, client, Config{StreamName: stream})
	rs := newResults()
	putAll(t, p, rs, recs, 0)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := rs.get(i).Err; err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	got := readStream(ctx, t, client, stream)
	checkReadBack(t, got, recs, rs, nil)
	rec.checkExplicitHashKeys(t, got.shards)
	t.Logf("%d records in %d Kinesis records over %d shards, %d PutRecords calls",
		len(recs), got.kinesisRecords, len(got.shards), rec.calls())
}

// testReshardDuringLoad reshards the stream from 2 to 4 shards while records arrive: every
// record is read back once in range, and the records put after the producer saw the new map
// are acknowledged in the open children.
func testReshardDuringLoad(t *testing.T, emu *emulator.Emulators) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := emu.KinesisClient()
	stream := createStream(ctx, t, client, "reshard", 2)
	p := startLocalProducer(ctx, t, client, Config{StreamName: stream, ShardMapRefreshInterval: 500 * time.Millisecond})
	recs := keyedThenKeyless(6000, 300, 100)
	order := rand.New(rand.NewPCG(3, 4)).Perm(len(recs))
	rs := newResults()
	lateWave := putInWavesAcrossReshard(ctx, t, p, client, stream, recs, order, rs)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := readStream(ctx, t, client, stream)
	checkReadBack(t, got, recs, rs, order)
	open := 0
	for _, s := range got.shards {
		if !s.closed {
			open++
		}
	}
	if open != 4 {
		t.Fatalf("%d open shards after UpdateShardCount to 4", open)
	}
	for _, i := range lateWave {
		if s := got.shards[rs.get(i).ShardID]; s == nil || s.closed {
			t.Fatalf("record %d of the last wave acknowledged in shard %s, not an open child", i, rs.get(i).ShardID)
		}
	}
}

// putInWavesAcrossReshard puts recs in the given order, interleaving keyed and keyless
// records, in 30 waves 50 ms apart; after wave 10 it reshards the stream from 2 to 4
// shards, and after wave 20 it waits until the producer's shard map holds the 4 children.
// It returns the indexes of the records of the last wave.
func putInWavesAcrossReshard(ctx context.Context, t *testing.T, p *Producer, client *kinesis.Client, stream string, recs []Record, order []int, rs *results) (lastWave []int) {
	t.Helper()
	const waves = 30
	per := len(recs) / waves
	for w := range waves {
		for _, i := range order[w*per : (w+1)*per] {
			if err := p.PutAsync(recs[i], rs.done(i)); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if w == waves-1 {
				lastWave = append(lastWave, i)
			}
		}
		switch w {
		case 10:
			if _, err := client.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
				StreamName: &stream, TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling,
			}); err != nil {
				t.Fatal(err)
			}
		case 20:
			emulatortest.WaitStreamActive(ctx, t, client, stream)
			waitShardMap(t, p, 4) // a periodic refresh has seen the new map
		}
		time.Sleep(50 * time.Millisecond) // records arrive over time, across the reshard
	}
	return lastWave
}

// waitShardMap waits until the producer's shard map lists n shards.
func waitShardMap(t *testing.T, p *Producer, n int) {
	t.Helper()
	eventually.Succeeds(t, 30*time.Second, func() error {
		p.mu.Lock()
		got := len(p.smap.shards)
		p.mu.Unlock()
		if got != n {
			return fmt.Errorf("producer's shard map lists %d shards, want %d", got, n)
		}
		return nil
	})
}

// testFaults puts records through injected faults (throttled entries, connection resets
// before and after the write, HTTP 500): every record is acknowledged within the default
// TTL, and every acknowledged one is in the stream.
func testFaults(t *testing.T, emu *emulator.Emulators) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	faults := &faultInjector{next: http.DefaultTransport, rng: rand.New(rand.NewPCG(5, 6)),
		entryFailure: 0.30, resetBefore: 0.05, resetAfter: 0.05, http500: 0.05}
	client := emu.KinesisClient(func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: faults}
		o.RetryMaxAttempts = 1 // the producer's own retries face the faults
	})
	stream := createStream(ctx, t, client, "faults", 2)
	p := startLocalProducer(ctx, t, client, Config{StreamName: stream, MaxAggregateBytes: 8192,
		RetryBaseDelay: 20 * time.Millisecond, RetryMaxDelay: 200 * time.Millisecond})
	recs := keyedThenKeyless(3000, 100, 100)
	rs := newResults()
	putAll(t, p, rs, recs, 0)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var acked []Record
	retried := 0
	for i, r := range recs {
		res := rs.get(i)
		if res.Err == nil {
			acked = append(acked, r)
		}
		if res.Attempts > 1 {
			retried++
		}
	}
	got := readStream(ctx, t, client, stream)
	checkAcknowledgedPresent(t, got, acked)
	t.Logf("faults injected: %s; %d of %d records acknowledged, %d needed retries",
		faults.summary(), len(acked), len(recs), retried)
	if retried == 0 || faults.total() == 0 {
		t.Fatal("no fault reached the producer: the injector is not in the path")
	}
	if len(acked) != len(recs) {
		t.Errorf("%d records failed within the default TTL despite retries", len(recs)-len(acked))
	}
}

// testRecordPastTTLFails throttles every entry: the record fails with ErrRecordExpired,
// carrying the last put error.
func testRecordPastTTLFails(t *testing.T, emu *emulator.Emulators) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	faults := &faultInjector{next: http.DefaultTransport, rng: rand.New(rand.NewPCG(1, 1)), entryFailure: 1}
	client := emu.KinesisClient(func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: faults} })
	stream := createStream(ctx, t, client, "ttl", 1)
	p := startLocalProducer(ctx, t, client, Config{StreamName: stream, RecordTTL: time.Second})
	res, err := p.Put(ctx, Record{PartitionKey: "k", Data: []byte("never stored")})
	if !errors.Is(err, ErrRecordExpired) || res.Err == nil {
		t.Fatalf("Put = %+v, %v; want ErrRecordExpired", res, err)
	}
	var pre *PutRecordError
	if !errors.As(err, &pre) || pre.Code != "ProvisionedThroughputExceededException" {
		t.Errorf("error %v does not carry the last put error", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func startLocalProducer(ctx context.Context, t *testing.T, client *kinesis.Client, cfg Config) *Producer {
	t.Helper()
	cfg.Logger = quietLogger
	p, err := New(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	})
	return p
}

func createStream(ctx context.Context, t *testing.T, client *kinesis.Client, name string, shards int32) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	emulatortest.CreateStream(ctx, t, client, name, int(shards))
	return name
}

type localShard struct {
	id         string
	start, end *big.Int
	closed     bool
}

type streamContents struct {
	shards         map[string]*localShard
	records        []userRecordOut
	kinesisRecords int
}

// readStream reads every shard (closed ones too) from TRIM_HORIZON to its end and
// deaggregates each Kinesis record.
func readStream(ctx context.Context, t *testing.T, client *kinesis.Client, stream string) streamContents {
	t.Helper()
	c := streamContents{shards: map[string]*localShard{}}
	var token *string
	for {
		in := &kinesis.ListShardsInput{NextToken: token}
		if token == nil {
			in.StreamName = &stream
		}
		out, err := client.ListShards(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.Shards {
			start, _ := new(big.Int).SetString(*s.HashKeyRange.StartingHashKey, 10)
			end, _ := new(big.Int).SetString(*s.HashKeyRange.EndingHashKey, 10)
			c.shards[*s.ShardId] = &localShard{id: *s.ShardId, start: start, end: end, closed: s.SequenceNumberRange.EndingSequenceNumber != nil}
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	for _, s := range c.shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: &stream, ShardId: &s.id, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10_000)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				c.kinesisRecords++
				urs, err := Deaggregate(nil, *r.PartitionKey, r.Data)
				if err != nil {
					t.Fatalf("shard %s record %s: %v", s.id, *r.SequenceNumber, err)
				}
				for _, u := range urs {
					h := md5Int(u.PartitionKey)
					if u.ExplicitHashKey != "" {
						h, _ = new(big.Int).SetString(u.ExplicitHashKey, 10)
					}
					c.records = append(c.records, userRecordOut{UserRecord: u, shard: s.id, sequenceNumber: *r.SequenceNumber,
						inRange: s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0})
				}
			}
			iter = out.NextShardIterator
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 && !s.closed {
				break // caught up with an open shard
			}
		}
	}
	return c
}

// checkReadBack checks every record is in the stream once within its shard's range, with
// the shard, sequence and sub-sequence number its Result gave, and per-key order (putOrder
// lists record indexes in the order they were put; nil means index order).
func checkReadBack(t *testing.T, c streamContents, recs []Record, rs *results, putOrder []int) {
	t.Helper()
	index := make(map[string]int, len(recs))
	for i, r := range recs {
		index[string(r.Data)] = i
	}
	type pos struct {
		seq string
		sub int64
	}
	found := make(map[int]pos, len(recs))
	for _, u := range c.records {
		i, ok := index[string(u.Data)]
		if !ok {
			t.Fatalf("unknown record %q in %s", u.Data, u.shard)
		}
		if !u.inRange {
			continue // a reshard duplicate a KCL consumer drops
		}
		if _, dup := found[i]; dup {
			t.Errorf("record %d twice within range", i)
		}
		found[i] = pos{u.sequenceNumber, u.SubSequenceNumber}
		if res := rs.get(i); res.ShardID != u.shard || res.SequenceNumber != u.sequenceNumber || res.SubSequenceNumber != u.SubSequenceNumber {
			t.Errorf("record %d: result %s/%s/%d, stream %s/%s/%d", i, res.ShardID, res.SequenceNumber, res.SubSequenceNumber,
				u.shard, u.sequenceNumber, u.SubSequenceNumber)
		}
	}
	if len(found) != len(recs) {
		t.Fatalf("%d of %d records in the stream within their shard's range", len(found), len(recs))
	}
	// Per-key order: within one shard, sequence numbers (then sub-sequence) follow put order.
	if putOrder == nil {
		putOrder = make([]int, len(recs))
		for i := range putOrder {
			putOrder[i] = i
		}
	}
	last := map[string]int{}
	for _, i := range putOrder {
		r := recs[i]
		if r.PartitionKey == "" {
			continue
		}
		// The documented exception: a record re-put after landing in a shard that closed
		// while it was in flight (more than one attempt) may follow later records of its key.
		if j, ok := last[r.PartitionKey]; ok && rs.get(j).ShardID == rs.get(i).ShardID && rs.get(j).Attempts == 1 {
			a, b := found[j], found[i]
			if cmpSeq(a.seq, b.seq) > 0 || (a.seq == b.seq && a.sub > b.sub) {
				t.Errorf("key %s: record %d stored after record %d", r.PartitionKey, j, i)
			}
		}
		last[r.PartitionKey] = i
	}
}

func cmpSeq(a, b string) int {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y)
}

func checkAcknowledgedPresent(t *testing.T, c streamContents, acked []Record) {
	t.Helper()
	present := map[string]bool{}
	for _, u := range c.records {
		if u.inRange {
			present[string(u.Data)] = true
		}
	}
	missing := 0
	for _, r := range acked {
		if !present[string(r.Data)] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged records are not in the stream", missing)
	}
}

// putRecorder passes requests through and keeps, per PutRecords entry, its explicit hash
// key and the shard Kinesis stored it in.
type putRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	puts []recordedEntry
	n    int
}

type recordedEntry struct{ explicitHashKey, shardID string }

type putRecordsRequest struct {
	Records []struct {
		Data            []byte  `json:"Data"`
		PartitionKey    string  `json:"PartitionKey"`
		ExplicitHashKey *string `json:"ExplicitHashKey,omitempty"`
	} `json:"Records"`
	StreamName string `json:"StreamName,omitempty"`
	StreamARN  string `json:"StreamARN,omitempty"`
}

type putRecordsResponse struct {
	FailedRecordCount int `json:"FailedRecordCount"`
	Records           []struct {
		SequenceNumber string `json:"SequenceNumber,omitempty"`
		ShardId        string `json:"ShardId,omitempty"`
		ErrorCode      string `json:"ErrorCode,omitempty"`
		ErrorMessage   string `json:"ErrorMessage,omitempty"`
	} `json:"Records"`
	EncryptionType string `json:"EncryptionType,omitempty"`
}

func isPutRecords(r *http.Request) bool {
	return strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutRecords")
}

func (p *putRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isPutRecords(r) {
		return p.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := p.next.RoundTrip(r)
	if err != nil || resp.StatusCode != 200 {
		return resp, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	var req putRecordsRequest
	var res putRecordsResponse
	if json.Unmarshal(body, &req) == nil && json.Unmarshal(out, &res) == nil && len(req.Records) == len(res.Records) {
		p.mu.Lock()
		p.n++
		for i, e := range res.Records {
			if e.ShardId != "" {
				p.puts = append(p.puts, recordedEntry{aws.ToString(req.Records[i].ExplicitHashKey), e.ShardId})
			}
		}
		p.mu.Unlock()
	}
	return resp, nil
}

func (p *putRecorder) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// checkExplicitHashKeys checks every aggregate was put with an explicit hash key inside the
// range of the shard it was stored in.
func (p *putRecorder) checkExplicitHashKeys(t *testing.T, shards map[string]*localShard) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.puts) == 0 {
		t.Fatal("no PutRecords entry recorded")
	}
	for _, e := range p.puts {
		h, ok := new(big.Int).SetString(e.explicitHashKey, 10)
		s := shards[e.shardID]
		if !ok || s == nil || s.start.Cmp(h) > 0 || h.Cmp(s.end) > 0 {
			t.Errorf("entry stored in %s has explicit hash key %q outside the shard", e.shardID, e.explicitHashKey)
		}
	}
}

// faultInjector sits between the SDK and kinesis-local and, for PutRecords only: resets the
// connection before sending (resetBefore) or after Kinesis stored the records (resetAfter,
// so the producer retries records that are in fact stored), answers HTTP 500 without
// sending (http500), and turns a share of the entries (entryFailure) into
// ProvisionedThroughputExceededException: those entries are removed from the request and
// their failure spliced into the response, as Kinesis does when it refuses them.
type faultInjector struct {
	next                                           http.RoundTripper
	entryFailure, resetBefore, resetAfter, http500 float64

	mu                                  sync.Mutex
	rng                                 *rand.Rand
	nReset, nResetAfter, n500, nEntries int
}

func (f *faultInjector) roll(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < p
}

func (f *faultInjector) count(c *int, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*c += n
}

func (f *faultInjector) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nReset + f.nResetAfter + f.n500 + f.nEntries
}

func (f *faultInjector) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("%d resets before, %d resets after storing, %d HTTP 500, %d throttled entries",
		f.nReset, f.nResetAfter, f.n500, f.nEntries)
}

var errConnectionReset = errors.New("read tcp 127.0.0.1: connection reset by peer (injected)")

func (f *faultInjector) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isPutRecords(r) {
		return f.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	switch {
	case f.roll(f.resetBefore):
		f.count(&f.nReset, 1)
		return nil, errConnectionReset
	case f.roll(f.http500):
		f.count(&f.n500, 1)
		return jsonResponse(r, 500, []byte(`{"__type":"InternalFailure","message":"injected"}`)), nil
	}
	var req putRecordsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("fault injector: decode PutRecords: %w", err)
	}
	failed := make([]bool, len(req.Records))
	kept := req
	kept.Records = kept.Records[:0:0]
	for i := range req.Records {
		if failed[i] = f.roll(f.entryFailure); !failed[i] {
			kept.Records = append(kept.Records, req.Records[i])
		}
	}
	var stored putRecordsResponse
	if len(kept.Records) > 0 {
		newBody, err := json.Marshal(kept)
		if err != nil {
			return nil, err
		}
		fwd := r.Clone(r.Context())
		fwd.Body = io.NopCloser(bytes.NewReader(newBody))
		fwd.ContentLength = int64(len(newBody))
		resp, err := f.next.RoundTrip(fwd)
		if err != nil || resp.StatusCode != 200 {
			return resp, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if f.roll(f.resetAfter) {
			f.count(&f.nResetAfter, 1)
			return nil, errConnectionReset
		}
		if err := json.Unmarshal(out, &stored); err != nil || len(stored.Records) != len(kept.Records) {
			return nil, fmt.Errorf("fault injector: decode PutRecords response %q: %v", out, err)
		}
	}
	var merged putRecordsResponse
	merged.EncryptionType = stored.EncryptionType
	merged.FailedRecordCount = stored.FailedRecordCount
	j := 0
	for i := range req.Records {
		if failed[i] {
			merged.FailedRecordCount++
			merged.Records = append(merged.Records, struct {
				SequenceNumber string `json:"SequenceNumber,omitempty"`
				ShardId        string `json:"ShardId,omitempty"`
				ErrorCode      string `json:"ErrorCode,omitempty"`
				ErrorMessage   string `json:"ErrorMessage,omitempty"`
			}{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "Rate exceeded for shard (injected)"})
			f.count(&f.nEntries, 1)
			continue
		}
		merged.Records = append(merged.Records, stored.Records[j])
		j++
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	return jsonResponse(r, 200, out), nil
}

func jsonResponse(r *http.Request, status int, body []byte) *http.Response {
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}
