// Package load sends records to the producer's HTTP API at a target rate (or as fast as it answers) with a fixed
// number of concurrent senders, and measures what was acknowledged and how long each request took.
//
// Every record is a JSON object naming its run, a unique id, its partition key, its sequence number within that
// key and its send time (see Payload), so that package verify can find it in the consumers' output. Each sender
// owns its own partition keys and sends one request at a time, so the records of one key are acknowledged in their
// sequence order: any other order in the consumers' output is the pipeline's doing.
package load

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultConcurrency    = 8
	DefaultPayloadBytes   = 100
	DefaultBatch          = 1
	DefaultKeys           = 64
	DefaultRequestTimeout = 30 * time.Second
	// MaxBatch is the producer's limit of records per batch request.
	MaxBatch = 500
)

// Paths of the producer's API (package ingest serves them).
const (
	pathRecord  = "/"
	pathRecords = "/records"
)

// Config configures a load run. URL and one of Records or Duration are required; every other zero value means its
// documented default.
type Config struct {
	// URL is the producer's base URL: the stack's ALB output or the local http://127.0.0.1:8080.
	URL string
	// Rate is the target in records per second. Default: 0, as fast as the producer answers.
	Rate float64
	// Records stops the run after this many records. Default: 0, no limit (Duration ends it).
	Records int
	// Duration stops the run after this long. Default: 0, no limit (Records ends it).
	Duration time.Duration
	// Concurrency is the number of senders, each with one request in flight. Default: DefaultConcurrency.
	Concurrency int
	// PayloadBytes is the size of each record's padding, on top of its ~100-byte identifying fields.
	// Default: DefaultPayloadBytes.
	PayloadBytes int
	// Batch is records per request: 1 sends POST / (one record), more sends POST /records. Default: 1.
	Batch int
	// Keys is the number of partition keys, shared out among the senders; at least Concurrency. Default:
	// DefaultKeys, or Concurrency when that is more.
	Keys int
	// RunID tells this run's records from others' in the consumers' output. Default: random.
	RunID string
	// RequestTimeout bounds each request. Default: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Client sends the requests. Default: a client keeping Concurrency connections open.
	Client *http.Client
	// OnAck, if set, is called (from the senders, concurrently) for every acknowledged record.
	OnAck func(Acked)
}

func (cfg Config) withDefaults() (Config, error) {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.PayloadBytes = cmp.Or(cfg.PayloadBytes, DefaultPayloadBytes)
	cfg.Batch = cmp.Or(cfg.Batch, DefaultBatch)
	cfg.Keys = cmp.Or(cfg.Keys, max(DefaultKeys, cfg.Concurrency))
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout)
	if cfg.RunID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.RunID = hex.EncodeToString(b)
	}
	var errs []error
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		errs = append(errs, fmt.Errorf("URL %q: want an http:// or https:// URL", cfg.URL))
	}
	if cfg.Records <= 0 && cfg.Duration <= 0 {
		errs = append(errs, errors.New("set Records or Duration (or both), or the run never ends"))
	}
	if cfg.Records < 0 || cfg.Duration < 0 || cfg.Rate < 0 || cfg.PayloadBytes < 0 || cfg.RequestTimeout < 0 {
		errs = append(errs, errors.New("records, duration, rate, payload size and request timeout must not be negative"))
	}
	if cfg.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d: want at least 1", cfg.Concurrency))
	}
	if cfg.Batch < 1 || cfg.Batch > MaxBatch {
		errs = append(errs, fmt.Errorf("batch %d: want 1-%d", cfg.Batch, MaxBatch))
	}
	if cfg.Keys < cfg.Concurrency {
		errs = append(errs, fmt.Errorf("keys %d: want at least the concurrency (%d), so each sender owns its keys", cfg.Keys, cfg.Concurrency))
	}
	if strings.ContainsAny(cfg.RunID, "-\" ") {
		errs = append(errs, fmt.Errorf("run id %q: want no '-', quote or space", cfg.RunID))
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("load: %w", errors.Join(errs...))
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConns:        cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return cfg, nil
}

// Payload is the JSON object sent as each record's data. The consumers write it back as their record line's data.
type Payload struct {
	// Run is the run id.
	Run string `json:"run"`
	// ID is unique in the run: "<run>-<n>".
	ID string `json:"id"`
	// Key is the record's partition key.
	Key string `json:"key"`
	// Seq numbers the records of Key from 1, in send order.
	Seq int64 `json:"seq"`
	// SentUnixNano is when the request carrying the record was sent.
	SentUnixNano int64 `json:"sent"`
	// Pad brings the record to the configured size.
	Pad string `json:"pad,omitempty"`
}

// Acked is a record the producer acknowledged (HTTP 200: it is in the stream).
type Acked struct {
	// ID and Key are the record's Payload.ID and partition key.
	ID, Key string
	// Seq is the record's Payload.Seq: its number among Key's records, from 1.
	Seq int64
	// Sent is when the request carrying the record was sent.
	Sent time.Time
	// ShardID and SequenceNumber are where the producer said the record went.
	ShardID, SequenceNumber string
}

// Result is what a run did.
type Result struct {
	// RunID is the run's id (in every record's payload).
	RunID string `json:"run_id"`
	// Records is how many records were sent (acknowledged or not).
	Records int64 `json:"records"`
	// Acked is how many records were acknowledged.
	Acked int64 `json:"acked"`
	// Failed is Records - Acked: refused, failed or unanswered.
	Failed int64 `json:"failed"`
	// Requests is how many HTTP requests were sent; RequestErrors how many got no HTTP answer.
	Requests int64 `json:"requests"`
	// RequestErrors is how many requests got no HTTP answer.
	RequestErrors int64 `json:"request_errors"`
	// Statuses counts records by the HTTP status of their answer ("0" for no answer).
	Statuses map[string]int64 `json:"statuses"`
	// Elapsed is the run's duration; AckedPerSecond is Acked over it.
	Elapsed time.Duration `json:"-"`
	// ElapsedSeconds is Elapsed in seconds, for the JSON report.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// AckedPerSecond is Acked divided by ElapsedSeconds.
	AckedPerSecond float64 `json:"acked_per_second"`
	// Request latencies (send to complete answer) in milliseconds.
	LatencyP50Millis float64 `json:"latency_p50_ms"`
	// LatencyP99Millis is the 99th percentile request latency, in milliseconds.
	LatencyP99Millis float64 `json:"latency_p99_ms"`
	// LatencyMaxMillis is the longest request latency, in milliseconds.
	LatencyMaxMillis float64 `json:"latency_max_ms"`
}

// Progress is a snapshot during a run.
type Progress struct {
	// Elapsed is the time since the run started.
	Elapsed time.Duration
	// Records and Acked are the records sent and acknowledged so far.
	Records, Acked int64
	// Failed is Records - Acked so far.
	Failed int64
	// RecentPerSecond is the acknowledged records per second since the previous snapshot.
	RecentPerSecond float64
	// Request latency percentiles since the previous snapshot, in milliseconds.
	RecentP50Millis, RecentP99Millis float64
}

// String is the live progress line.
func (p Progress) String() string {
	return fmt.Sprintf("%6.1fs  sent %d  acked %d  errors %d  %.0f rec/s  p50 %.1f ms  p99 %.1f ms",
		p.Elapsed.Seconds(), p.Records, p.Acked, p.Failed, p.RecentPerSecond, p.RecentP50Millis, p.RecentP99Millis)
}

// Run sends load until Records are sent, Duration has passed or ctx is done, and returns what happened. progress,
// if not nil, is called every progressEvery with a snapshot.
func Run(ctx context.Context, cfg Config, progressEvery time.Duration, progress func(Progress)) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(cfg.Duration))
		defer cancel()
	}
	r := &runner{cfg: cfg, pacer: newPacer(start, cfg.Rate), statuses: map[int]int64{}}
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() { r.sender(ctx, w) })
	}
	if progress != nil && progressEvery > 0 {
		done := make(chan struct{})
		defer close(done)
		go func() {
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			last, lastAcked := start, int64(0)
			for {
				select {
				case <-done:
					return
				case now := <-t.C:
					p := r.snapshot(now.Sub(start))
					p.RecentPerSecond = float64(p.Acked-lastAcked) / now.Sub(last).Seconds()
					last, lastAcked = now, p.Acked
					progress(p)
				}
			}
		}()
	}
	wg.Wait()
	return r.result(time.Since(start)), nil
}

// runner is the state shared by the senders of one run.
type runner struct {
	cfg   Config
	pacer *pacer
	// claimed counts records handed to senders, to stop at cfg.Records.
	claimed atomic.Int64

	mu             sync.Mutex
	records, acked int64
	requests       int64
	requestErrors  int64
	statuses       map[int]int64
	latencies      []time.Duration // all requests
	recent         []time.Duration // since the last snapshot
}

// claim reserves up to n records; it returns how many may be sent (0 when the run has sent its Records).
func (r *runner) claim(n int) int {
	if r.cfg.Records == 0 {
		return n
	}
	end := r.claimed.Add(int64(n))
	if over := end - int64(r.cfg.Records); over > 0 {
		return max(0, n-int(over))
	}
	return n
}

// sender sends requests until the run ends. Sender w owns keys w, w+Concurrency, ...
func (r *runner) sender(ctx context.Context, w int) {
	var keys []string
	for k := w; k < r.cfg.Keys; k += r.cfg.Concurrency {
		keys = append(keys, "k"+strconv.Itoa(k))
	}
	seqs := make([]int64, len(keys))
	pad := strings.Repeat("x", r.cfg.PayloadBytes)
	next, n := 0, int64(0)
	for ctx.Err() == nil {
		count := r.claim(r.cfg.Batch)
		if count == 0 {
			return
		}
		if err := r.pacer.wait(ctx, count); err != nil {
			return
		}
		sent := time.Now()
		batch := make([]Payload, count)
		for i := range batch {
			seqs[next]++
			n++
			batch[i] = Payload{Run: r.cfg.RunID, ID: fmt.Sprintf("%s-%d-%d", r.cfg.RunID, w, n), Key: keys[next],
				Seq: seqs[next], SentUnixNano: sent.UnixNano(), Pad: pad}
			next = (next + 1) % len(keys)
		}
		r.send(ctx, batch, sent)
	}
}

// send makes one request and records its outcome.
func (r *runner) send(ctx context.Context, batch []Payload, sent time.Time) {
	statuses, acks, requestErr := r.post(ctx, batch)
	latency := time.Since(sent)
	for i := range acks {
		acks[i].Sent = sent
		if acks[i].ID != "" && r.cfg.OnAck != nil {
			r.cfg.OnAck(acks[i])
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.records += int64(len(batch))
	if requestErr {
		r.requestErrors++
	}
	for i, s := range statuses {
		r.statuses[s]++
		if acks[i].ID != "" {
			r.acked++
		}
	}
	r.latencies = append(r.latencies, latency)
	r.recent = append(r.recent, latency)
}

// post sends batch and returns, per record, its HTTP status (0: no answer) and its acknowledgement (empty ID when
// not acknowledged). requestErr is true when the request got no HTTP answer.
func (r *runner) post(ctx context.Context, batch []Payload) (statuses []int, acks []Acked, requestErr bool) {
	statuses = make([]int, len(batch))
	acks = make([]Acked, len(batch))
	var body bytes.Buffer
	path := pathRecord
	if r.cfg.Batch > 1 {
		path = pathRecords
		body.WriteByte('[')
	}
	for i, p := range batch {
		data, _ := json.Marshal(p) // a struct of strings and numbers always marshals
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"data":`)
		body.Write(data)
		body.WriteString(`,"partitionKey":`)
		key, _ := json.Marshal(p.Key)
		body.Write(key)
		body.WriteByte('}')
	}
	if r.cfg.Batch > 1 {
		body.WriteByte(']')
	}
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, r.cfg.URL+path, &body)
	if err != nil {
		return statuses, acks, true
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return statuses, acks, true
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return statuses, acks, true
	}
	for i := range statuses {
		statuses[i] = resp.StatusCode
	}
	if resp.StatusCode != http.StatusOK {
		return statuses, acks, false
	}
	type entry struct {
		Status         int    `json:"status"`
		ShardID        string `json:"shardId"`
		SequenceNumber string `json:"sequenceNumber"`
	}
	if r.cfg.Batch == 1 {
		var e entry
		if json.Unmarshal(raw, &e) == nil && e.SequenceNumber != "" {
			acks[0] = acked(batch[0], e.ShardID, e.SequenceNumber)
		}
		return statuses, acks, false
	}
	var br struct {
		Records []entry `json:"records"`
	}
	if json.Unmarshal(raw, &br) != nil || len(br.Records) != len(batch) {
		for i := range statuses {
			statuses[i] = -1 // an answer this program does not understand: nothing counts as acknowledged
		}
		return statuses, acks, false
	}
	for i, e := range br.Records {
		statuses[i] = e.Status
		if e.Status == http.StatusOK && e.SequenceNumber != "" {
			acks[i] = acked(batch[i], e.ShardID, e.SequenceNumber)
		}
	}
	return statuses, acks, false
}

func acked(p Payload, shardID, sequenceNumber string) Acked {
	return Acked{ID: p.ID, Key: p.Key, Seq: p.Seq, ShardID: shardID, SequenceNumber: sequenceNumber}
}

// snapshot returns the totals so far and the recent latencies, which it resets.
func (r *runner) snapshot(elapsed time.Duration) Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Progress{Elapsed: elapsed, Records: r.records, Acked: r.acked, Failed: r.records - r.acked}
	p.RecentP50Millis = millis(Percentile(r.recent, 0.50))
	p.RecentP99Millis = millis(Percentile(r.recent, 0.99))
	r.recent = r.recent[:0]
	return p
}

func (r *runner) result(elapsed time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		RunID: r.cfg.RunID, Records: r.records, Acked: r.acked, Failed: r.records - r.acked,
		Requests: r.requests, RequestErrors: r.requestErrors, Statuses: map[string]int64{},
		Elapsed: elapsed, ElapsedSeconds: elapsed.Seconds(),
		LatencyP50Millis: millis(Percentile(r.latencies, 0.50)),
		LatencyP99Millis: millis(Percentile(r.latencies, 0.99)),
		LatencyMaxMillis: millis(Percentile(r.latencies, 1)),
	}
	if elapsed > 0 {
		res.AckedPerSecond = float64(r.acked) / elapsed.Seconds()
	}
	for s, n := range r.statuses {
		res.Statuses[strconv.Itoa(s)] = n
	}
	return res
}

// Percentile returns the q-quantile (0 < q <= 1) of ds by the nearest-rank method, or 0 for no values.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
