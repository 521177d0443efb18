package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPacerReleasesRecordsAtTheRate(t *testing.T) {
	tests := map[string]struct {
		rate    float64
		senders int
		batch   int
		records int
	}{
		"one sender, singles":    {rate: 10, senders: 1, batch: 1, records: 20},
		"four senders, singles":  {rate: 100, senders: 4, batch: 1, records: 200},
		"three senders, batches": {rate: 50, senders: 3, batch: 5, records: 150},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// GIVEN a pacer shared by senders
				start := time.Now()
				p := newPacer(start, tc.rate)
				interval := time.Duration(float64(time.Second) / tc.rate)
				var mu sync.Mutex
				var released []time.Duration
				var wg sync.WaitGroup
				// WHEN each sender takes batches until the records are out
				left := tc.records
				for range tc.senders {
					wg.Go(func() {
						for {
							mu.Lock()
							if left == 0 {
								mu.Unlock()
								return
							}
							left -= tc.batch
							mu.Unlock()
							if err := p.wait(context.Background(), tc.batch); err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							released = append(released, time.Since(start))
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				// THEN batch i goes at exactly i*batch*interval: evenly spaced, never early, never bunched
				slices.Sort(released)
				for i, at := range released {
					if want := time.Duration(i*tc.batch) * interval; at != want {
						t.Fatalf("batch %d released at %v; want %v", i, at, want)
					}
				}
				if len(released) != tc.records/tc.batch {
					t.Fatalf("%d batches released; want %d", len(released), tc.records/tc.batch)
				}
			})
		})
	}
}

func TestPacerCatchesUpAfterAStallAndStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// GIVEN a 10/s pacer whose sender stalls for a second after its first record
		start := time.Now()
		p := newPacer(start, 10)
		ctx, cancel := context.WithCancel(context.Background())
		if err := p.wait(ctx, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		// WHEN it resumes, THEN the records that fell due meanwhile go at once
		for range 9 {
			if err := p.wait(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("caught up at %v; want 1s (no extra waiting)", got)
		}
		// WHEN cancelled while waiting, THEN wait returns the context's error
		_ = p.wait(ctx, 1) // due at 1s: now
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		if err := p.wait(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("wait after cancel = %v; want context.Canceled", err)
		}
	})
}

// fakeProducer answers like the producer's API, acknowledging records whose seq is not divisible by failEvery.
type fakeProducer struct {
	failEvery int64
	latency   time.Duration
	mu        sync.Mutex
	requests  int
}

func (f *fakeProducer) RoundTrip(req *http.Request) (*http.Response, error) {
	time.Sleep(f.latency)
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	type rec struct {
		Data         Payload `json:"data"`
		PartitionKey string  `json:"partitionKey"`
	}
	body, _ := io.ReadAll(req.Body)
	answer := func(status int, v any) (*http.Response, error) {
		b, _ := json.Marshal(v)
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(string(b))), Header: http.Header{}, Request: req}, nil
	}
	entry := func(r rec) map[string]any {
		if r.Data.Key != r.PartitionKey || f.failEvery > 0 && r.Data.Seq%f.failEvery == 0 {
			return map[string]any{"status": 503, "error": "refused"}
		}
		return map[string]any{"status": 200, "shardId": "shardId-0", "sequenceNumber": fmt.Sprint(r.Data.Seq)}
	}
	if req.URL.Path == pathRecords {
		var rs []rec
		if err := json.Unmarshal(body, &rs); err != nil {
			return answer(400, map[string]string{"error": err.Error()})
		}
		out := map[string]any{"records": []map[string]any{}}
		for _, r := range rs {
			out["records"] = append(out["records"].([]map[string]any), entry(r))
		}
		return answer(200, out)
	}
	var r rec
	if err := json.Unmarshal(body, &r); err != nil {
		return answer(400, map[string]string{"error": err.Error()})
	}
	e := entry(r)
	return answer(e["status"].(int), e)
}

func TestRunSendsRecordsAndCountsAcknowledgements(t *testing.T) {
	tests := map[string]struct {
		cfg          Config
		failEvery    int64
		wantAcked    int64
		wantRequests int64
		wantElapsed  time.Duration
	}{
		"singles at a rate": {
			cfg: Config{Records: 100, Rate: 50, Concurrency: 4}, wantAcked: 100, wantRequests: 100,
			wantElapsed: 99*20*time.Millisecond + time.Millisecond,
		},
		"batches as fast as possible": {
			cfg: Config{Records: 1000, Batch: 100, Concurrency: 2}, wantAcked: 1000, wantRequests: 10,
			wantElapsed: 5 * time.Millisecond,
		},
		"some refused": {
			cfg: Config{Records: 60, Batch: 4, Concurrency: 3, Keys: 3}, failEvery: 4, wantAcked: 45, wantRequests: 15,
			wantElapsed: 5 * time.Millisecond,
		},
		"duration ends the run": {
			cfg: Config{Duration: 2*time.Second + 10*time.Millisecond, Rate: 10, Concurrency: 2}, wantAcked: 21, wantRequests: 21,
			wantElapsed: 2*time.Second + 10*time.Millisecond,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// GIVEN a producer answering after 1 ms
				fake := &fakeProducer{failEvery: tc.failEvery, latency: time.Millisecond}
				cfg := tc.cfg
				cfg.URL = "http://producer.test"
				cfg.Client = &http.Client{Transport: fake}
				var mu sync.Mutex
				var acks []Acked
				cfg.OnAck = func(a Acked) { mu.Lock(); acks = append(acks, a); mu.Unlock() }
				// WHEN the load runs
				res, err := Run(context.Background(), cfg, 0, nil)
				if err != nil {
					t.Fatal(err)
				}
				// THEN every record is accounted for, acknowledged ones once each, in per-key order
				if res.Acked != tc.wantAcked || res.Requests != tc.wantRequests || res.Records != res.Acked+res.Failed {
					t.Fatalf("result %+v; want %d acked in %d requests", res, tc.wantAcked, tc.wantRequests)
				}
				if res.Elapsed != tc.wantElapsed {
					t.Errorf("elapsed %v; want %v", res.Elapsed, tc.wantElapsed)
				}
				if res.LatencyP50Millis != 1 {
					t.Errorf("p50 %v ms; want 1", res.LatencyP50Millis)
				}
				ids := map[string]bool{}
				lastSeq := map[string]int64{}
				slices.SortFunc(acks, func(a, b Acked) int { return a.Sent.Compare(b.Sent) })
				for _, a := range acks {
					if ids[a.ID] {
						t.Fatalf("id %s acknowledged twice", a.ID)
					}
					ids[a.ID] = true
					if a.Seq <= lastSeq[a.Key] {
						t.Fatalf("key %s: seq %d after %d", a.Key, a.Seq, lastSeq[a.Key])
					}
					lastSeq[a.Key] = a.Seq
				}
				if int64(len(acks)) != res.Acked {
					t.Errorf("OnAck called %d times; want %d", len(acks), res.Acked)
				}
			})
		})
	}
}

func TestRunReportsProgressAtItsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// GIVEN a producer answering after 1 ms and a run of 50 records at 100/s (the last due at 490 ms)
		cfg := Config{URL: "http://producer.test", Records: 50, Rate: 100, Concurrency: 2,
			Client: &http.Client{Transport: &fakeProducer{latency: time.Millisecond}}}
		var mu sync.Mutex
		var got []Progress
		// WHEN it runs with a snapshot every 100 ms
		res, err := Run(context.Background(), cfg, 100*time.Millisecond, func(p Progress) {
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the progress goroutine has stopped
		// THEN a snapshot came every 100 ms until the run ended, each counting the 10 records acknowledged since the
		// previous one (records due at 0-90 ms are answered by 91 ms; the one due at 100 ms only at 101 ms)
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 4 {
			t.Fatalf("%d progress snapshots %+v; want 4 (at 100, 200, 300 and 400 ms)", len(got), got)
		}
		for i, p := range got {
			k := int64(i + 1)
			want := Progress{Elapsed: time.Duration(k) * 100 * time.Millisecond, Records: 10 * k, Acked: 10 * k,
				RecentPerSecond: 100, RecentP50Millis: 1, RecentP99Millis: 1}
			if p != want {
				t.Errorf("snapshot %d = %+v; want %+v", i, p, want)
			}
		}
		if res.Acked != 50 {
			t.Errorf("acked %d; want 50", res.Acked)
		}
	})
}

func TestProgressString(t *testing.T) {
	tests := map[string]struct {
		p    Progress
		want string
	}{
		"running": {
			p: Progress{Elapsed: 12345 * time.Millisecond, Records: 1000, Acked: 990, Failed: 10, RecentPerSecond: 499.6,
				RecentP50Millis: 1.26, RecentP99Millis: 17.04},
			want: "  12.3s  sent 1000  acked 990  errors 10  500 rec/s  p50 1.3 ms  p99 17.0 ms",
		},
		"nothing yet": {
			p:    Progress{},
			want: "   0.0s  sent 0  acked 0  errors 0  0 rec/s  p50 0.0 ms  p99 0.0 ms",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("String() = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no url":            {cfg: Config{Records: 1}, want: "URL"},
		"no end":            {cfg: Config{URL: "http://x"}, want: "never ends"},
		"batch too large":   {cfg: Config{URL: "http://x", Records: 1, Batch: 501}, want: "batch 501"},
		"fewer keys":        {cfg: Config{URL: "http://x", Records: 1, Concurrency: 4, Keys: 2}, want: "keys 2"},
		"negative rate":     {cfg: Config{URL: "http://x", Records: 1, Rate: -1}, want: "negative"},
		"run id with a '-'": {cfg: Config{URL: "http://x", Records: 1, RunID: "a-b"}, want: "run id"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg, 0, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	tests := map[string]struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		"empty":      {in: nil, q: 0.5, want: 0},
		"one":        {in: ms(7), q: 0.99, want: 7 * time.Millisecond},
		"median":     {in: ms(5, 1, 3, 2, 4), q: 0.5, want: 3 * time.Millisecond},
		"p99 of 100": {in: ms(descending(100)...), q: 0.99, want: 99 * time.Millisecond},
		"max":        {in: ms(1, 9, 3), q: 1, want: 9 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Percentile(tc.in, tc.q); got != tc.want {
				t.Errorf("Percentile(%v) = %v; want %v", tc.q, got, tc.want)
			}
		})
	}
}

// descending returns n, n-1, ..., 1.
func descending(n int) []int {
	out := make([]int, 0, n)
	for i := n; i >= 1; i-- {
		out = append(out, i)
	}
	return out
}
