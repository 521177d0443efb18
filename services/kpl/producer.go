package kpl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Defaults of Config, the KPL's where the KPL has one.
const (
	DefaultMaxAggregateBytes       = 51_200
	DefaultMaxBatchRecords         = 500
	DefaultMaxBatchBytes           = 5 << 20
	DefaultMaxBufferedTime         = 100 * time.Millisecond
	DefaultRecordTTL               = 30 * time.Second
	DefaultRateLimitPercent        = 150
	DefaultMaxInFlight             = 24
	DefaultMaxBufferedBytes        = 64 << 20
	DefaultShardMapRefreshInterval = time.Minute
	DefaultRetryBaseDelay          = 100 * time.Millisecond
	DefaultRetryMaxDelay           = 2 * time.Second
	DefaultPutTimeout              = 6 * time.Second
)

// keylessKeyReserve is the room a keyless record leaves for the short key the producer gives
// it, so its Kinesis record stays within MaxRecordSize.
const keylessKeyReserve = 8

// KinesisAPI is the part of the Kinesis client the producer uses; *kinesis.Client
// implements it.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Config configures a Producer. Only StreamName is required; every other zero value
// means the documented default.
type Config struct {
	// StreamName is the Kinesis stream to put to. Required.
	StreamName string
	// MaxAggregateBytes caps the size of one aggregated Kinesis record. A record too large to
	// fit an aggregate on its own is sent unaggregated. Default: 51,200 (the KPL's
	// AggregationMaxSize); at most 1 MiB - 1 KiB.
	MaxAggregateBytes int
	// MaxBatchRecords caps the entries of one PutRecords request. Default and maximum: 500.
	MaxBatchRecords int
	// MaxBatchBytes caps the bytes (data plus partition keys) of one PutRecords request.
	// Default and maximum: 5 MiB.
	MaxBatchBytes int
	// MaxBufferedTime is how long an aggregate waits for more records before it is sent
	// (the KPL's RecordMaxBufferedTime). Default: 100 ms.
	MaxBufferedTime time.Duration
	// RecordTTL is how long a record may wait for a successful put, retries included, before
	// it fails with ErrRecordExpired. Default: 30 s.
	RecordTTL time.Duration
	// RateLimitPercent is the share of a shard's write limits (1 MiB/s and 1,000 records/s)
	// the producer sends to each shard, as the KPL's RateLimit. More than 100 lets a lone
	// producer use bursts Kinesis allows; several producers on one stream should lower it.
	// Default: 150.
	RateLimitPercent int
	// MaxInFlight caps concurrent PutRecords requests. Default: 24 (the KPL's MaxConnections).
	MaxInFlight int
	// MaxBufferedBytes bounds the bytes (data and keys) of the records accepted and not yet
	// finished; past it PutAsync refuses at once with ErrBufferFull, so an overload or a
	// stalled stream becomes back-pressure on the caller instead of unbounded memory.
	// Aggregates hold a second, encoded copy while in flight, so the producer's memory peaks
	// near twice this bound: give it at most half of what the process can spare.
	// Default: 64 MiB (a peak near 128 MiB; 64 s of one shard's 1 MiB/s write limit).
	MaxBufferedBytes int64
	// ShardMapRefreshInterval is how often the shard map is re-listed even when no put
	// revealed a change. Default: 1 minute.
	ShardMapRefreshInterval time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the exponential backoff with full jitter between
	// attempts of a failed entry: attempt n waits a random time in [0, min(max, base*2^(n-1))).
	// Defaults: 100 ms and 2 s.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the backoff; at least RetryBaseDelay. Default: 2 s.
	RetryMaxDelay time.Duration
	// PutTimeout bounds one PutRecords call. Default: 6 s (the KPL's RequestTimeout).
	PutTimeout time.Duration
	// Logger receives warnings (shard map changes, failing puts). Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the producer's metrics (see the Metric constants). Default: none.
	Metrics telemetry.Recorder
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.StreamName == "" {
		return out, errors.New("kpl: Config.StreamName is required")
	}
	out.MaxAggregateBytes = cmp.Or(out.MaxAggregateBytes, DefaultMaxAggregateBytes)
	out.MaxBatchRecords = cmp.Or(out.MaxBatchRecords, DefaultMaxBatchRecords)
	out.MaxBatchBytes = cmp.Or(out.MaxBatchBytes, DefaultMaxBatchBytes)
	out.RateLimitPercent = cmp.Or(out.RateLimitPercent, DefaultRateLimitPercent)
	out.MaxInFlight = cmp.Or(out.MaxInFlight, DefaultMaxInFlight)
	out.MaxBufferedBytes = cmp.Or(out.MaxBufferedBytes, DefaultMaxBufferedBytes)
	out.MaxBufferedTime = cmp.Or(out.MaxBufferedTime, DefaultMaxBufferedTime)
	out.RecordTTL = cmp.Or(out.RecordTTL, DefaultRecordTTL)
	out.ShardMapRefreshInterval = cmp.Or(out.ShardMapRefreshInterval, DefaultShardMapRefreshInterval)
	out.RetryBaseDelay = cmp.Or(out.RetryBaseDelay, DefaultRetryBaseDelay)
	out.RetryMaxDelay = cmp.Or(out.RetryMaxDelay, DefaultRetryMaxDelay)
	out.PutTimeout = cmp.Or(out.PutTimeout, DefaultPutTimeout)
	out.Logger = cmp.Or(out.Logger, slog.Default())
	out.Metrics = cmp.Or(out.Metrics, telemetry.Discard)
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("kpl: Config."+format, args...))
		}
	}
	check(out.MaxAggregateBytes > EmptyAggregateSize && out.MaxAggregateBytes <= MaxRecordSize-1024,
		"MaxAggregateBytes %d: want %d..%d", out.MaxAggregateBytes, EmptyAggregateSize+1, MaxRecordSize-1024)
	check(out.MaxBatchRecords > 0 && out.MaxBatchRecords <= 500, "MaxBatchRecords %d: want 1..500", out.MaxBatchRecords)
	check(out.MaxBatchBytes >= MaxRecordSize && out.MaxBatchBytes <= 5<<20, "MaxBatchBytes %d: want 1 MiB..5 MiB", out.MaxBatchBytes)
	check(out.RateLimitPercent > 0, "RateLimitPercent %d: want > 0", out.RateLimitPercent)
	check(out.MaxInFlight > 0, "MaxInFlight %d: want > 0", out.MaxInFlight)
	check(out.MaxBufferedBytes >= MaxRecordSize, "MaxBufferedBytes %d: want at least 1 MiB", out.MaxBufferedBytes)
	for name, d := range map[string]time.Duration{
		"MaxBufferedTime": out.MaxBufferedTime, "RecordTTL": out.RecordTTL, "ShardMapRefreshInterval": out.ShardMapRefreshInterval,
		"RetryBaseDelay": out.RetryBaseDelay, "RetryMaxDelay": out.RetryMaxDelay, "PutTimeout": out.PutTimeout,
	} {
		check(d > 0, "%s %v: want > 0", name, d)
	}
	check(out.RetryMaxDelay >= out.RetryBaseDelay, "RetryMaxDelay %v: want >= RetryBaseDelay %v", out.RetryMaxDelay, out.RetryBaseDelay)
	return out, errors.Join(errs...)
}

// Result is the outcome of one record, given to its PutAsync callback.
type Result struct {
	// ShardID and SequenceNumber identify the Kinesis record that holds the user record.
	ShardID string
	// SequenceNumber is the Kinesis record's sequence number, shared by every user record of
	// one aggregate.
	SequenceNumber string
	// SubSequenceNumber is the record's index in its aggregate (0 for an unaggregated one),
	// the number a KCL consumer reports next to SequenceNumber.
	SubSequenceNumber int64
	// Attempts is the number of PutRecords attempts the record went through.
	Attempts int
	// Err is nil when Kinesis acknowledged the record. Otherwise it wraps ErrRecordExpired
	// (and the last put error), ErrClosed, or a *PutRecordError / the request's error for a
	// failure that retrying cannot fix.
	Err error
}

// PutRecordError is a failed PutRecords entry: Kinesis's error code and message.
type PutRecordError struct {
	// Code is the entry's ErrorCode, such as InternalFailure.
	Code string
	// Message is the entry's ErrorMessage.
	Message string
}

// Error implements error: the code and the message.
func (e *PutRecordError) Error() string {
	return fmt.Sprintf("kpl: put record: %s: %s", e.Code, e.Message)
}

// Producer is a shard-aware batching Kinesis producer compatible with the KPL format.
//
// Every record is mapped to its shard with the stream's shard map; each shard has one open
// aggregate, sent when it is full (MaxAggregateBytes) or MaxBufferedTime after its first
// record, with the shard's starting hash key as explicit hash key so it lands in that shard.
// Aggregates of many shards share PutRecords requests (MaxBatchRecords, MaxBatchBytes) and
// up to MaxInFlight requests run at once, each shard held to its rate limit. Only the failed
// entries of a request are retried, with backoff and jitter, until RecordTTL.
//
// Keyless records (no partition key, no explicit hash key) are spread over the shards: the
// producer fills one shard's aggregate at a time, choosing the least loaded shard for each
// new one, and gives them that shard's short keyless key, whose hash lies inside the shard.
// So they cost one to three key bytes per aggregate instead of a 36-byte UUID per record,
// and a consumer checking every user record's hash key (the Java KCL does) keeps them.
//
// Ordering: records of one partition key (or explicit hash key) are written to their shard
// in the order PutAsync accepted them, retries included: per shard, at most one aggregate
// holding keyed records is in flight, and a failed one is retried before any later keyed
// aggregate of that shard is sent. The cost is that keyed traffic of one shard moves at most
// one aggregate per PutRecords round trip (51,200 bytes per 20-50 ms in AWS, beyond the
// shard's 1 MiB/s). Exceptions: a record that fails (expired, closed, or a non-retryable
// error) leaves a gap; and when a reshard closes a shard while one of its aggregates is in
// flight, that aggregate's records may be re-put after later records of the same key. The
// KPL itself gives no ordering guarantee under retries. Keyless records have no order.
//
// Delivery is at least once: a record acknowledged to its caller is in the stream; after a
// reshard a record can appear twice: once in the shard the aggregate landed on, whose hash
// range does not hold the record (the Java KCL drops such records; services/kcl delivers them
// flagged OutsideShardRange), and once in the shard it was re-put to.
//
// Memory is bounded by MaxBufferedBytes: PutAsync never blocks and never grows the buffer.
type Producer struct {
	client  KinesisAPI
	cfg     Config
	log     *slog.Logger
	metrics telemetry.Recorder

	wake      chan struct{} // tells the dispatcher something changed
	refreshCh chan struct{} // asks for a shard map refresh
	stop      chan struct{} // closed when the background loops must end
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopped   chan struct{} // closed when Close has finished

	aggregatePool sync.Pool

	mu            sync.Mutex
	state         producerState
	shards        []*shardState // sorted by starting hash key, parallel to smap.shards
	smap          *shardMap
	keyless       *shardState // shard filling keyless records, with keylessOpen its aggregate
	keylessOpen   *aggregate
	keylessNext   int
	buffered      int64
	inFlight      int
	rr            int // shard to start the next batch with, for fairness
	gen           uint64
	flushGen      uint64
	outstanding   map[uint64]int // live aggregates per generation, for Flush
	flushWaiters  []flushWaiter
	pendingRemap  []wrongShard // acknowledged on an unexpected shard, waiting for a new map
	stats         counters
	stopping      bool // Close's deadline passed: fail instead of retrying
	closeCauseErr error
}

type producerState int

const (
	stateNew producerState = iota
	stateStarted
	stateClosed
)

type flushWaiter struct {
	gen  uint64
	done chan struct{}
}

// New validates cfg and returns a producer for the stream that puts through client (usually a *kinesis.Client).
// Call Start before putting.
func New(cfg Config, client KinesisAPI) (*Producer, error) {
	if client == nil {
		return nil, errors.New("kpl: Kinesis client is nil")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		client:      client,
		cfg:         c,
		log:         c.Logger.With("stream", c.StreamName),
		metrics:     c.Metrics,
		wake:        make(chan struct{}, 1),
		refreshCh:   make(chan struct{}, 1),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
		outstanding: make(map[uint64]int),
	}
	p.aggregatePool.New = func() any { return new(aggregate) }
	return p, nil
}

// Start lists the stream's shards and starts the background loops (dispatching, shard map
// refresh). ctx bounds the initial listing only; the loops run until Close.
func (p *Producer) Start(ctx context.Context) error {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state != stateNew {
		return errors.New("kpl: producer already started or closed")
	}
	m, err := loadShardMap(ctx, p.client, p.cfg.StreamName)
	if err != nil {
		return fmt.Errorf("kpl: start: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateNew {
		cancel()
		return errors.New("kpl: producer already started or closed")
	}
	p.cancel = cancel
	p.applyShardMapLocked(m, time.Now())
	p.state = stateStarted
	p.wg.Add(2)
	go p.dispatchLoop(runCtx)
	go p.refreshLoop(runCtx)
	return nil
}

// PutAsync accepts r for sending and returns at once; done is called exactly once with the
// outcome, from one of the producer's goroutines: it must return quickly and must not call
// Flush or Close. r.Data is copied before PutAsync returns.
//
// It refuses the record, without calling done, with ErrBufferFull, ErrClosed,
// ErrNotStarted, ErrRecordTooLarge or an *InvalidRecordError.
func (p *Producer) PutAsync(r Record, done func(Result)) error {
	h, keyed, err := r.validate()
	if err != nil {
		return err
	}
	if r.PartitionKey == "" && len(r.Data)+keylessKeyReserve > MaxRecordSize {
		return ErrRecordTooLarge
	}
	size := int64(len(r.Data) + len(r.PartitionKey) + len(r.ExplicitHashKey))
	p.mu.Lock()
	switch {
	case p.state == stateNew:
		p.mu.Unlock()
		return ErrNotStarted
	case p.state == stateClosed:
		p.mu.Unlock()
		return ErrClosed
	case p.buffered+size > p.cfg.MaxBufferedBytes:
		p.stats.rejected++
		p.mu.Unlock()
		return ErrBufferFull
	}
	p.buffered += size
	p.stats.received++
	wake := p.addLocked(r.PartitionKey, r.ExplicitHashKey, r.Data, h, keyed, recordMeta{done: done, keyless: !keyed}, size, p.gen, time.Time{})
	p.mu.Unlock()
	if wake {
		p.signal()
	}
	return nil
}

// Put sends r and waits for its outcome or for ctx. The error is Result.Err, a refusal
// from PutAsync, or ctx's error (the record may then still be sent).
func (p *Producer) Put(ctx context.Context, r Record) (Result, error) {
	ch := make(chan Result, 1)
	if err := p.PutAsync(r, func(res Result) { ch <- res }); err != nil {
		return Result{Err: err}, err
	}
	select {
	case res := <-ch:
		return res, res.Err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("kpl: put: %w", ctx.Err())
	}
}

// Flush sends every buffered record at once (not waiting for MaxBufferedTime) and returns
// when all records accepted before the call are finished (acknowledged or failed), or with
// ctx's error when ctx ends first.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.state == stateNew {
		p.mu.Unlock()
		return nil
	}
	p.gen++
	g := p.gen
	p.flushGen = g
	if p.minOutstandingGenLocked() >= g {
		p.mu.Unlock()
		return nil
	}
	w := flushWaiter{gen: g, done: make(chan struct{})}
	p.flushWaiters = append(p.flushWaiters, w)
	p.mu.Unlock()
	p.signal()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kpl: flush: %w", ctx.Err())
	}
}

// Close refuses new records, flushes the buffered ones within ctx's deadline and stops the
// background loops. Records still unsent when ctx ends fail with an error wrapping
// ErrClosed (and ctx's error), through their callbacks, and Close returns an error saying
// how many. Calling Close again waits for the first call to finish.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		<-p.stopped
		return nil
	}
	started := p.state == stateStarted
	p.state = stateClosed
	p.mu.Unlock()
	defer close(p.stopped)
	if !started {
		return nil
	}
	flushErr := p.Flush(ctx)

	p.mu.Lock()
	if flushErr != nil {
		// Retries and new sends end now; in-flight requests are cancelled below.
		p.stopping = true
		p.closeCauseErr = fmt.Errorf("%w: record not sent before the close deadline: %w", ErrClosed, context.Cause(ctx))
	}
	p.mu.Unlock()
	close(p.stop)
	p.cancel()
	p.wg.Wait()

	// Everything still held was never sent or was in a cancelled request.
	p.mu.Lock()
	cause := p.closeCauseErr
	if cause == nil {
		cause = ErrClosed
	}
	var failed []*aggregate
	for _, s := range p.shards {
		if s.open != nil {
			failed = append(failed, s.open)
			s.open = nil
		}
		failed = append(failed, s.queue...)
		s.queue = nil
	}
	for _, w := range p.pendingRemap {
		failed = append(failed, w.agg)
	}
	p.pendingRemap = nil
	unsent := 0
	var out deliveries
	for _, a := range failed {
		unsent += len(a.metas)
		out.fail(a, cause)
		p.finishLocked(a)
	}
	stats := p.takeStatsLocked()
	p.mu.Unlock()
	p.deliver(out)
	stats.publish(p.metrics)
	if unsent > 0 || flushErr != nil {
		return fmt.Errorf("kpl: close: %d records not sent: %w", unsent, flushErr)
	}
	return nil
}

// signal wakes the dispatcher without blocking.
func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// requestRefresh asks the refresh loop for a new shard map without blocking.
func (p *Producer) requestRefresh() {
	select {
	case p.refreshCh <- struct{}{}:
	default:
	}
}
