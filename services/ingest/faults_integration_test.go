package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/ingest/ingesttest"
	"github.com/streamproc/streamproc/services/kpl"
)

func TestFaultsLoseNoAcknowledgedRecord(t *testing.T) {
	p := newPipeline(t, 2, kpl.Config{
		MaxBufferedTime: 20 * time.Millisecond,
		RetryBaseDelay:  5 * time.Millisecond,
		RetryMaxDelay:   50 * time.Millisecond,
	}, func(f *ingesttest.FaultTransport) {
		f.EntryFailRate = 0.30
		f.ResetRate = 0.10
		f.ServerErrorRate = 0.10
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var all, singles []*sentRecord
	var bodies [][]byte
	for n := range 1500 {
		r, obj := makeRecord(t, "faulty-single", n)
		b, _ := json.Marshal(obj)
		singles = append(singles, r)
		bodies = append(bodies, b)
	}
	sendSingles(t, ctx, p.url, singles, bodies, 64)
	all = append(all, singles...)
	for b := range 6 {
		var recs []*sentRecord
		var objs []map[string]any
		for i := range 500 {
			r, obj := makeRecord(t, fmt.Sprintf("faulty-batch%d", b), i)
			recs = append(recs, r)
			objs = append(objs, obj)
		}
		sendBatch(t, ctx, p.url+"/records", recs, objs, b%2 == 0)
		all = append(all, recs...)
	}

	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.OutOfRange) > 0 {
		t.Errorf("%d user records lie outside their shard's range (a KCL consumer drops them), first: %+v", len(s.OutOfRange), s.OutOfRange[0])
	}
	acked, _ := checkAcknowledged(t, s, all)
	counts, accepted := p.faults.Snapshot()
	checkAggregatesInShard(t, s, accepted)
	refused := map[int]int{}
	for _, r := range all {
		if r.status != http.StatusOK {
			refused[r.status]++
		}
	}
	// With a 30 s TTL every record gets through the faults in the end.
	if acked != len(all) {
		t.Errorf("%d of %d records acknowledged; others by status: %v", acked, len(all), refused)
	}
	if counts.FailedEntries == 0 || counts.ResetsBefore+counts.ResetsAfter == 0 || counts.ServerErrors == 0 {
		t.Errorf("faults not all injected: %+v", counts)
	}
	t.Logf("%d records, %d acknowledged and found at their location; %d PutRecords calls, %d entries throttled, %d resets before and %d after the write, %d 500s; stream holds %d user records (duplicates from resets after the write: %d)",
		len(all), acked, counts.Calls, counts.FailedEntries, counts.ResetsBefore, counts.ResetsAfter, counts.ServerErrors, len(s.Records), len(s.Records)-len(all))
}

func TestRecordPastItsTTLIsNotAcknowledged(t *testing.T) {
	p := newPipeline(t, 1, kpl.Config{
		MaxBufferedTime: 10 * time.Millisecond,
		RecordTTL:       300 * time.Millisecond,
		RetryBaseDelay:  10 * time.Millisecond,
		RetryMaxDelay:   50 * time.Millisecond,
	}, func(f *ingesttest.FaultTransport) { f.ThrottleAll = true })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	status, _, body, err := post(ctx, http.DefaultClient, p.url, "application/json", []byte(`{"data":"never accepted","partitionKey":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusGatewayTimeout || !strings.Contains(string(body), "time to live") {
		t.Errorf("single record: %d %s, want 504 saying the time to live passed", status, body)
	}

	recs := []*sentRecord{{data: []byte("a")}, {data: []byte("b")}}
	sendBatch(t, ctx, p.url+"/records", recs, []map[string]any{{"data": "a"}, {"data": "b", "partitionKey": "p"}}, false)
	for _, r := range recs {
		if r.status != http.StatusGatewayTimeout || !strings.Contains(r.err, "time to live") {
			t.Errorf("batch record %q: %d %q, want 504 saying the time to live passed", r.data, r.status, r.err)
		}
	}
	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Records) != 0 {
		t.Errorf("stream holds %d records; every put was throttled", len(s.Records))
	}
	counts, _ := p.faults.Snapshot()
	t.Logf("%d PutRecords calls, %d entries throttled before the records expired", counts.Calls, counts.FailedEntries)
}

func TestStalledKinesisAnswers503AtOnceWithBoundedMemory(t *testing.T) {
	// GIVEN a producer with a 2 MiB buffer in front of a stalled Kinesis
	const bound = 2 << 20 // MaxBufferedBytes
	stall := make(chan struct{})
	p := newPipeline(t, 2, kpl.Config{
		MaxBufferedTime:  10 * time.Millisecond,
		MaxBufferedBytes: bound,
	}, func(f *ingesttest.FaultTransport) { f.Stall = stall })
	release := sync.OnceFunc(func() { close(stall) })
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	load := stalledLoad{ctx: ctx, client: client, url: p.url, payload: strings.Repeat("x", 8<<10)}
	base := heapInUse()

	// WHEN clients fill the buffer, then push ten times its bound more
	accepted := load.fillUntilRefused(t)
	if len(accepted)*len(load.payload) > 2*bound {
		t.Fatalf("%d records of %d bytes accepted before the first 503; buffer bound is %d bytes", len(accepted), len(load.payload), bound)
	}
	full := heapInUse()
	statuses := load.pushWhileFull(t, 10*bound/len(load.payload))
	after := heapInUse()

	// THEN every further answer is an immediate 503, the heap stays bounded,
	// and once Kinesis recovers every record answered 202 reaches the stream
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusOK] != 0 {
		t.Errorf("while stalled and full: answers %v, want only 503s (and no 200: nothing reached Kinesis)", statuses)
	}
	checkHeapBounded(t, bound, base, full, after)
	t.Logf("buffer bound %d bytes: %d records of %d bytes buffered before the first 503; heap +%d bytes when full, +%d after %d refused requests (%v)",
		bound, len(accepted), len(load.payload), full-min(full, base), after-min(after, base), statuses[http.StatusServiceUnavailable], statuses)
	release()
	if err := p.producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	in := s.Data()
	for _, n := range accepted {
		if !in[load.data(n)] {
			t.Errorf("record %06d answered 202 is not in the stream", n)
		}
	}
}

// stalledLoad sends single records of payload, numbered, to a service whose
// Kinesis is stalled.
type stalledLoad struct {
	ctx     context.Context
	client  *http.Client
	url     string
	payload string
}

// data is the data of record n.
func (l *stalledLoad) data(n int) string { return fmt.Sprintf("%06d-%s", n, l.payload) }

func (l *stalledLoad) body(n int) []byte {
	b, _ := json.Marshal(map[string]any{"data": l.data(n)})
	return b
}

// fillUntilRefused sends records with ?ack=buffered until the first refusal,
// which must be a 503 with Retry-After saying the buffer is full; every
// request must be answered meanwhile. It returns the numbers of the records
// accepted (not their bodies: the test must not hold the data it measures).
func (l *stalledLoad) fillUntilRefused(t *testing.T) (accepted []int) {
	t.Helper()
	for n := 0; ; n++ {
		status, hdr, answer, err := post(l.ctx, l.client, l.url+"/?ack=buffered", "application/json", l.body(n))
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusAccepted {
			accepted = append(accepted, n)
			continue
		}
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(string(answer), "buffer is full") {
			t.Fatalf("request %d: %d %v %s, want 503 with Retry-After", n, status, hdr, answer)
		}
		return accepted
	}
}

// pushWhileFull sends requests more records from 16 concurrent clients, half
// with ?ack=buffered, and returns how many answers each status had; every
// 503 must carry Retry-After.
func (l *stalledLoad) pushWhileFull(t *testing.T, requests int) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := range 16 {
		wg.Go(func() {
			for i := range requests / 16 {
				url := l.url + "/?ack=buffered"
				if i%2 == 0 {
					url = l.url
				}
				status, hdr, _, err := post(l.ctx, l.client, url, "application/json", l.body(1_000_000+w*10_000+i))
				if err != nil {
					t.Error(err)
					return
				}
				if status == http.StatusServiceUnavailable && hdr.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return statuses
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// checkHeapBounded checks the heap's growth over base when the buffer was
// full and after the refused load, for a producer buffer of bound bytes:
// within what the buffer may hold, and not growing under refusals.
func checkHeapBounded(t *testing.T, bound int, base, full, after uint64) {
	t.Helper()
	// The producer documents a peak near twice its bound (aggregates hold
	// an encoded copy in flight); the SDK holds the stalled requests'
	// base64 JSON bodies (4/3 of the aggregates); allow that and a fixed
	// margin for the test's own HTTP machinery.
	limit := uint64(2*bound + 4*bound/3 + 2<<20)
	if full-min(full, base) > limit || after-min(after, base) > limit {
		t.Errorf("heap grew by %d bytes when full and %d after 10x more load; bound %d bytes, limit %d", full-min(full, base), after-min(after, base), bound, limit)
	}
	if after > full+1<<20 {
		t.Errorf("heap grew from %d to %d bytes under refused load: refusals must not buffer", full, after)
	}
}
