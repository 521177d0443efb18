package kpl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// minRefreshGap spaces shard map listings, so a burst of wrong-shard puts lists once.
const minRefreshGap = time.Second

// shardState is one open shard with its open aggregate, its queue and its rate limiter.
type shardState struct {
	shardRange
	open *aggregate
	// queue holds closed aggregates waiting to be sent, oldest first; a failed aggregate
	// goes back to the front.
	queue []*aggregate
	// orderedInFlight is set while an aggregate holding keyed records is in flight: the
	// next one waits, so a retry cannot reorder a key's records.
	orderedInFlight bool
	limiter         shardLimiter
	// pendingBytes counts the records of this shard not finished yet, to pick the least
	// loaded shard for keyless records.
	pendingBytes int64
	// retired is set when the shard left the map (it closed): what still points at it is
	// re-mapped.
	retired bool
}

// recordMeta is what the producer keeps per user record besides its bytes in the aggregate.
type recordMeta struct {
	done func(Result)
	// size is the record's share of the buffer: data plus its own keys.
	size int32
	// attempts counts attempts made in earlier aggregates, before the record was re-mapped.
	attempts int32
	keyless  bool
}

// aggregate is one Kinesis record in the making: an aggregated record, or a single record
// too large to aggregate (raw).
type aggregate struct {
	shard     *shardState // the shard it is predicted to land in
	agg       Aggregator
	raw       bool
	rawData   []byte
	pk, ehk   string // the PutRecords entry's partition key and explicit hash key
	metas     []recordMeta
	userBytes int64 // sum of metas' sizes
	dataBytes int64 // sum of the records' data lengths
	ordered   bool  // holds keyed records
	gen       uint64
	openedAt  time.Time
	// deadline is when the aggregate expires: RecordTTL after it closed, or earlier when a
	// re-mapped record brought an earlier deadline.
	deadline  time.Time
	attempts  int
	notBefore time.Time // backoff: not sent before
	lastErr   error
	encoded   []byte
}

func (a *aggregate) entrySize() int {
	if a.raw {
		return len(a.rawData) + len(a.pk)
	}
	return a.agg.Size() + len(a.pk)
}

func (a *aggregate) data() []byte {
	if a.raw {
		return a.rawData
	}
	return a.encoded
}

// wrongShard is an aggregate Kinesis stored in another shard than the predicted one.
type wrongShard struct {
	agg            *aggregate
	shardID, seqNo string
}

// putBatch is one PutRecords request.
type putBatch struct {
	aggs  []*aggregate
	bytes int
}

// deliveries collects outcomes under the lock, to call the callbacks outside it.
type deliveries struct {
	whole  []wholeOutcome
	single []singleOutcome
}

type wholeOutcome struct {
	agg            *aggregate
	shardID, seqNo string
	err            error
}

type singleOutcome struct {
	done func(Result)
	res  Result
}

func (d *deliveries) fail(a *aggregate, err error) {
	d.whole = append(d.whole, wholeOutcome{agg: a, err: err})
}

func (d *deliveries) succeed(a *aggregate, shardID, seqNo string) {
	d.whole = append(d.whole, wholeOutcome{agg: a, shardID: shardID, seqNo: seqNo})
}

// deliver calls the callbacks, then lets Flush see the aggregates finished (so Flush
// returns only after its records' callbacks ran), and recycles them.
func (p *Producer) deliver(d deliveries) {
	for _, s := range d.single {
		if s.done != nil {
			s.done(s.res)
		}
	}
	for _, w := range d.whole {
		a := w.agg
		for i, m := range a.metas {
			res := Result{Attempts: a.attempts + int(m.attempts), Err: w.err}
			if w.err == nil {
				res.ShardID, res.SequenceNumber = w.shardID, w.seqNo
				if !a.raw {
					res.SubSequenceNumber = int64(i)
				}
			}
			if m.done != nil {
				m.done(res)
			}
		}
	}
	if len(d.whole) == 0 {
		return
	}
	p.mu.Lock()
	for _, w := range d.whole {
		p.dropOutstandingLocked(w.agg.gen)
	}
	p.notifyFlushWaitersLocked()
	p.mu.Unlock()
	for _, w := range d.whole {
		p.recycle(w.agg)
	}
}

func (p *Producer) recycle(a *aggregate) {
	a.agg.Reset()
	clear(a.metas)
	*a = aggregate{agg: a.agg, metas: a.metas[:0], encoded: a.encoded[:0]}
	p.aggregatePool.Put(a)
}

// addLocked adds one record to its shard's open aggregate and reports whether the
// dispatcher must be woken (an aggregate opened or closed). gen and carried (a deadline
// brought by a re-mapped record, zero otherwise) keep Flush and RecordTTL exact.
func (p *Producer) addLocked(pk, ehk string, data []byte, h HashKey, keyed bool, meta recordMeta, size int64, gen uint64, carried time.Time) bool {
	var s *shardState
	var now time.Time
	if keyed {
		s = p.shards[p.smap.find(h)]
	} else {
		s = p.keylessShardLocked()
		if a := s.open; a != nil && a.agg.SizeIfAdded(s.keylessKey, s.keylessHashKey, len(data)) > p.cfg.MaxAggregateBytes {
			// The keyless aggregate is full: close it and move on to the least loaded shard.
			now = time.Now()
			p.closeLocked(s, now)
			s = p.keylessShardLocked()
		}
		pk, ehk = s.keylessKey, s.keylessHashKey
	}
	if pk == "" {
		pk = s.keylessKey
	}
	meta.size = int32(size)
	if len(data)+len(pk)+len(ehk)+32 > p.cfg.MaxAggregateBytes && aggregateSizeAlone(pk, ehk, len(data)) > p.cfg.MaxAggregateBytes {
		// Too large to aggregate: its own entry, after the shard's open aggregate (order).
		now = time.Now()
		if s.open != nil {
			p.closeLocked(s, now)
		}
		a := p.newAggregateLocked(s, now, gen)
		a.raw = true
		a.rawData = append([]byte(nil), data...)
		a.pk, a.ehk = pk, ehk
		p.appendRecordLocked(a, meta, size, len(data), keyed, carried)
		s.open = a
		p.closeLocked(s, now)
		return true
	}
	wake := false
	a := s.open
	if a != nil && a.agg.SizeIfAdded(pk, ehk, len(data)) > p.cfg.MaxAggregateBytes {
		now = time.Now()
		p.closeLocked(s, now)
		a = nil
	}
	if a == nil {
		if now.IsZero() {
			now = time.Now()
		}
		a = p.newAggregateLocked(s, now, gen)
		s.open = a
		wake = true
	}
	a.agg.Add(pk, ehk, data)
	p.appendRecordLocked(a, meta, size, len(data), keyed, carried)
	if gen < a.gen {
		// A re-mapped record of an older generation: Flush must wait for this aggregate.
		p.dropOutstandingLocked(a.gen)
		a.gen = gen
		p.outstanding[gen]++
	}
	if !keyed {
		p.keylessOpen = a
	}
	return wake
}

func (p *Producer) appendRecordLocked(a *aggregate, meta recordMeta, size int64, dataLen int, keyed bool, carried time.Time) {
	a.metas = append(a.metas, meta)
	a.userBytes += size
	a.dataBytes += int64(dataLen)
	a.shard.pendingBytes += size
	if keyed {
		a.ordered = true
	}
	if !carried.IsZero() && (a.deadline.IsZero() || carried.Before(a.deadline)) {
		a.deadline = carried
	}
}

// aggregateSizeAlone is the size of an aggregate holding only this record.
func aggregateSizeAlone(pk, ehk string, dataLen int) int {
	var empty Aggregator
	return empty.SizeIfAdded(pk, ehk, dataLen)
}

func (p *Producer) newAggregateLocked(s *shardState, now time.Time, gen uint64) *aggregate {
	a := p.aggregatePool.Get().(*aggregate)
	a.shard = s
	a.pk, a.ehk = s.keylessKey, s.startKey
	a.gen = gen
	a.openedAt = now
	p.outstanding[gen]++
	return a
}

// closeLocked moves the shard's open aggregate to its queue and starts its RecordTTL.
func (p *Producer) closeLocked(s *shardState, now time.Time) {
	a := s.open
	s.open = nil
	if d := now.Add(p.cfg.RecordTTL); a.deadline.IsZero() || d.Before(a.deadline) {
		a.deadline = d
	}
	s.queue = append(s.queue, a)
}

// keylessShardLocked returns the shard that takes keyless records: the one whose aggregate
// they are filling, or, once that aggregate closed, the least loaded shard (ties broken
// round-robin), so keyless load spreads over all shards one aggregate at a time.
func (p *Producer) keylessShardLocked() *shardState {
	if s := p.keyless; s != nil && !s.retired && p.keylessOpen != nil && s.open == p.keylessOpen {
		return s
	}
	n := len(p.shards)
	best := -1
	for i := range n {
		j := (p.keylessNext + i) % n
		if best < 0 || p.shards[j].pendingBytes < p.shards[best].pendingBytes {
			best = j
		}
	}
	p.keylessNext = (best + 1) % n
	p.keyless = p.shards[best]
	p.keylessOpen = nil
	return p.keyless
}

// finishLocked releases an aggregate's buffer share; its callbacks run later via deliver,
// which also ends its Flush generation.
func (p *Producer) finishLocked(a *aggregate) {
	p.buffered -= a.userBytes
	a.shard.pendingBytes -= a.userBytes
	if a.attempts > 0 {
		p.stats.retries = append(p.stats.retries, float64(a.attempts-1))
	}
}

func (p *Producer) dropOutstandingLocked(gen uint64) {
	if p.outstanding[gen]--; p.outstanding[gen] <= 0 {
		delete(p.outstanding, gen)
	}
}

func (p *Producer) minOutstandingGenLocked() uint64 {
	m := uint64(math.MaxUint64)
	for g := range p.outstanding {
		m = min(m, g)
	}
	return m
}

func (p *Producer) notifyFlushWaitersLocked() {
	if len(p.flushWaiters) == 0 {
		return
	}
	m := p.minOutstandingGenLocked()
	p.flushWaiters = slices.DeleteFunc(p.flushWaiters, func(w flushWaiter) bool {
		if w.gen <= m {
			close(w.done)
			return true
		}
		return false
	})
}

func (p *Producer) expireLocked(a *aggregate, d *deliveries) {
	var err error
	if a.lastErr != nil {
		err = fmt.Errorf("%w within %v, after %d attempts: %w", ErrRecordExpired, p.cfg.RecordTTL, a.attempts, a.lastErr)
	} else {
		err = fmt.Errorf("%w: not sent within %v (shard %s rate limit or backlog)", ErrRecordExpired, p.cfg.RecordTTL, a.shard.id)
	}
	p.stats.expired += int64(len(a.metas))
	p.finishLocked(a)
	d.fail(a, err)
}

func (p *Producer) takeStatsLocked() counters {
	s := p.stats
	p.stats = counters{}
	return s
}

// dispatchLoop closes lingering aggregates, expires old ones and starts PutRecords
// requests, then sleeps until the next deadline or a signal.
func (p *Producer) dispatchLoop(ctx context.Context) {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		batches, next, out := p.planLocked(now)
		stats := p.takeStatsLocked()
		p.mu.Unlock()
		p.deliver(out)
		stats.publish(p.metrics)
		for _, b := range batches {
			p.wg.Add(1)
			go p.send(ctx, b)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// planLocked does the dispatcher's work for one instant and returns the requests to start
// and when it must run again (zero: only when signalled). It closes lingering aggregates,
// expires the queued ones past their RecordTTL, then fills requests from the shards' queues,
// starting at a shard that moves round-robin so no shard always comes first.
func (p *Producer) planLocked(now time.Time) ([]*putBatch, time.Time, deliveries) {
	var out deliveries
	var next earliest
	for _, s := range p.shards {
		p.closeLingeringLocked(s, now, &next)
		p.expireQueuedLocked(s, now, &next, &out)
	}
	if p.stopping || len(p.shards) == 0 {
		return nil, next.t, out
	}
	b := batcher{p: p}
	n := len(p.shards)
	for i := range n {
		p.planShardLocked(p.shards[(p.rr+i)%n], now, &b, &next)
	}
	p.rr = (p.rr + 1) % n
	return b.finish(), next.t, out
}

// earliest keeps the earliest of the instants offered to it: when the dispatcher must run
// again. Zero until one is offered.
type earliest struct{ t time.Time }

func (e *earliest) offer(t time.Time) {
	if e.t.IsZero() || t.Before(e.t) {
		e.t = t
	}
}

// closeLingeringLocked closes s's open aggregate once it has waited MaxBufferedTime for
// more records, or at once when a Flush waits for it; otherwise the end of its linger is
// offered to next.
func (p *Producer) closeLingeringLocked(s *shardState, now time.Time, next *earliest) {
	a := s.open
	if a == nil {
		return
	}
	if lingerEnd := a.openedAt.Add(p.cfg.MaxBufferedTime); a.gen < p.flushGen || !now.Before(lingerEnd) {
		p.closeLocked(s, now)
	} else {
		next.offer(lingerEnd)
	}
}

// expireQueuedLocked fails the aggregates queued in s whose RecordTTL deadline passed (into
// out) and offers the deadlines of the others to next.
func (p *Producer) expireQueuedLocked(s *shardState, now time.Time, next *earliest, out *deliveries) {
	q := s.queue[:0]
	for _, a := range s.queue {
		if !now.Before(a.deadline) {
			p.expireLocked(a, out)
			continue
		}
		next.offer(a.deadline)
		q = append(q, a)
	}
	clear(s.queue[len(q):])
	s.queue = q
}

// planShardLocked moves the aggregates of s's queue that may be sent now, oldest first, into
// requests, and keeps the others queued in their order.
func (p *Producer) planShardLocked(s *shardState, now time.Time, b *batcher, next *earliest) {
	// A keyed aggregate waits while an older keyed one of its shard is in flight or waiting:
	// a retry must not reorder a key's records.
	orderedBlocked := s.orderedInFlight
	q := s.queue[:0]
	for _, a := range s.queue {
		size := a.entrySize()
		req := p.requestForLocked(s, a, size, orderedBlocked, now, b, next)
		if a.ordered {
			orderedBlocked = true
		}
		if req == nil {
			q = append(q, a)
			continue
		}
		p.startAttemptLocked(s, a, size, now, req)
	}
	clear(s.queue[len(q):])
	s.queue = q
}

// requestForLocked returns the request aggregate a (of size bytes, queued in s) joins now,
// or nil when it must wait: behind an older keyed aggregate (orderedBlocked), for its retry
// backoff, for its shard's rate limit, or for a free request (MaxInFlight). A wait that ends
// at a known time is offered to next.
func (p *Producer) requestForLocked(s *shardState, a *aggregate, size int, orderedBlocked bool, now time.Time, b *batcher, next *earliest) *putBatch {
	switch {
	case a.ordered && orderedBlocked:
		return nil
	case now.Before(a.notBefore):
		next.offer(a.notBefore)
		return nil
	}
	if wait := s.limiter.wait(now, size); wait > 0 {
		next.offer(now.Add(wait))
		return nil
	}
	return b.requestFor(size)
}

// startAttemptLocked puts aggregate a (of size bytes, queued in s) into request req: it
// takes its bytes from the shard's rate limit, holds the shard's keyed order while a is in
// flight, and counts the attempt (and, for the first, how long a was buffered).
func (p *Producer) startAttemptLocked(s *shardState, a *aggregate, size int, now time.Time, req *putBatch) {
	s.limiter.take(now, size)
	if a.ordered {
		s.orderedInFlight = true
	}
	if a.attempts == 0 {
		p.stats.bufferingTimes = append(p.stats.bufferingTimes, millis(now.Sub(a.openedAt)))
	}
	a.attempts++
	req.aggs = append(req.aggs, a)
	req.bytes += size
}

// batcher fills the PutRecords requests of one planning round, one at a time, within
// MaxBatchRecords and MaxBatchBytes each and MaxInFlight in all.
type batcher struct {
	p       *Producer
	batches []*putBatch // full requests
	cur     *putBatch   // the request being filled
}

// requestFor returns the request an entry of size bytes joins: the current one, or a new one
// when it is full; nil when MaxInFlight requests already run. A new request counts as in
// flight at once.
func (b *batcher) requestFor(size int) *putBatch {
	cfg := &b.p.cfg
	if b.cur != nil && (len(b.cur.aggs) >= cfg.MaxBatchRecords || b.cur.bytes+size > cfg.MaxBatchBytes) {
		b.batches = append(b.batches, b.cur)
		b.cur = nil
	}
	if b.cur == nil && b.p.inFlight < cfg.MaxInFlight {
		b.cur = &putBatch{aggs: make([]*aggregate, 0, min(cfg.MaxBatchRecords, 64))}
		b.p.inFlight++
	}
	return b.cur
}

// finish returns the requests filled, the last one included.
func (b *batcher) finish() []*putBatch {
	if b.cur != nil {
		b.batches = append(b.batches, b.cur)
	}
	return b.batches
}

// send runs one PutRecords request and hands its outcome to complete.
func (p *Producer) send(ctx context.Context, b *putBatch) {
	defer p.wg.Done()
	entries := make([]types.PutRecordsRequestEntry, len(b.aggs))
	for i, a := range b.aggs {
		if !a.raw && len(a.encoded) == 0 {
			a.encoded = a.agg.AppendEncoded(a.encoded[:0])
		}
		entries[i] = types.PutRecordsRequestEntry{Data: a.data(), PartitionKey: &a.pk}
		if a.ehk != "" {
			entries[i].ExplicitHashKey = &a.ehk
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, p.cfg.PutTimeout)
	out, err := p.client.PutRecords(callCtx, &kinesis.PutRecordsInput{StreamName: &p.cfg.StreamName, Records: entries})
	cancel()
	if err == nil && len(out.Records) != len(entries) {
		err = fmt.Errorf("PutRecords answered %d entries for %d", len(out.Records), len(entries))
	}
	p.complete(ctx, b, out, err)
}

// complete settles every aggregate of a finished request: success, retry, failure, or a
// re-map when Kinesis stored it in an unexpected shard.
func (p *Producer) complete(ctx context.Context, b *putBatch, out *kinesis.PutRecordsOutput, err error) {
	now := time.Now()
	var d deliveries
	refresh := false
	p.mu.Lock()
	p.inFlight--
	for _, a := range b.aggs {
		if a.ordered {
			a.shard.orderedInFlight = false
		}
	}
	if err != nil {
		code := errorCode(err)
		wrapped := fmt.Errorf("kpl: put records: %w", err)
		retryable := ctx.Err() == nil && retryableRequestError(err)
		for _, a := range b.aggs {
			p.stats.addError(code)
			a.lastErr = wrapped
			if retryable {
				p.retryLocked(a, now, &d)
			} else {
				p.failLocked(a, wrapped, &d)
			}
		}
	} else {
		for i, a := range b.aggs {
			r := out.Records[i]
			switch {
			case r.ErrorCode != nil:
				e := &PutRecordError{Code: *r.ErrorCode}
				if r.ErrorMessage != nil {
					e.Message = *r.ErrorMessage
				}
				p.stats.addError(e.Code)
				a.lastErr = e
				if retryableEntryCode(e.Code) {
					p.retryLocked(a, now, &d)
				} else {
					p.failLocked(a, e, &d)
				}
			case r.ShardId == nil || r.SequenceNumber == nil:
				a.lastErr = errors.New("kpl: PutRecords entry without error code, shard id or sequence number")
				p.stats.addError(ErrorCodeTransport)
				p.retryLocked(a, now, &d)
			case *r.ShardId != a.shard.id:
				w := wrongShard{agg: a, shardID: *r.ShardId, seqNo: *r.SequenceNumber}
				if a.shard.retired && p.smap.indexOf(w.shardID) >= 0 {
					// The map was refreshed while the aggregate was in flight: settle it now.
					p.settleWrongShardLocked(w, &d)
					break
				}
				// Stale map: the predicted shard closed. Settle it against a fresh map.
				p.pendingRemap = append(p.pendingRemap, w)
				refresh = true
			default:
				p.succeedLocked(a)
				d.succeed(a, *r.ShardId, *r.SequenceNumber)
			}
		}
	}
	stats := p.takeStatsLocked()
	p.mu.Unlock()
	p.deliver(d)
	stats.publish(p.metrics)
	if refresh {
		p.requestRefresh()
	}
	p.signal()
}

func (p *Producer) succeedLocked(a *aggregate) {
	p.stats.userPut += int64(len(a.metas))
	p.stats.userDataPut += a.dataBytes
	p.stats.kinesisPut++
	p.stats.kinesisDataPut += int64(a.entrySize())
	p.stats.perKinesis = append(p.stats.perKinesis, float64(len(a.metas)))
	p.finishLocked(a)
}

func (p *Producer) failLocked(a *aggregate, err error, d *deliveries) {
	if p.stopping {
		err = errors.Join(p.closeCauseErr, err)
	}
	p.finishLocked(a)
	d.fail(a, err)
}

// retryLocked schedules another attempt after a backoff with full jitter, or fails the
// aggregate when its TTL passed or Close gave up.
func (p *Producer) retryLocked(a *aggregate, now time.Time, d *deliveries) {
	switch {
	case p.stopping:
		p.failLocked(a, a.lastErr, d)
		return
	case !now.Before(a.deadline):
		p.expireLocked(a, d)
		return
	}
	ceiling := p.cfg.RetryMaxDelay
	if shift := a.attempts - 1; shift < 32 {
		ceiling = min(ceiling, p.cfg.RetryBaseDelay<<shift)
	}
	a.notBefore = now.Add(rand.N(ceiling + 1))
	if a.shard.retired {
		p.remapLocked(a, nil, d)
		return
	}
	a.shard.queue = slices.Insert(a.shard.queue, 0, a)
}

// remapLocked puts an aggregate's records back through the current shard map: they join
// the open aggregates of their (new) shards, keeping their callbacks, attempts, Flush
// generation and TTL deadline. keep, when set, says which records are settled where they
// landed instead (their hash key lies in the shard Kinesis stored them in).
func (p *Producer) remapLocked(a *aggregate, keep func(h HashKey) bool, d *deliveries) {
	var records []UserRecord
	if a.raw {
		records = []UserRecord{{PartitionKey: a.pk, ExplicitHashKey: a.ehk, Data: a.rawData}}
	} else {
		if len(a.encoded) == 0 {
			a.encoded = a.agg.AppendEncoded(a.encoded[:0])
		}
		var err error
		records, err = Deaggregate(nil, a.pk, a.encoded)
		if err != nil || len(records) != len(a.metas) {
			// Cannot happen for an aggregate this package encoded; fail rather than lose track.
			p.failLocked(a, fmt.Errorf("kpl: re-map aggregate: %d records for %d: %v", len(records), len(a.metas), err), d)
			return
		}
	}
	// The records move into other aggregates; this one only leaves the books (deliver ends
	// its generation, after the callbacks of the records settled here).
	a.shard.pendingBytes -= a.userBytes
	for i, r := range records {
		m := a.metas[i]
		m.attempts += int32(a.attempts)
		h := UserRecordHashKey(r.PartitionKey, r.ExplicitHashKey)
		if keep != nil && keep(h) {
			d.single = append(d.single, singleOutcome{done: m.done, res: Result{SubSequenceNumber: r.SubSequenceNumber, Attempts: int(m.attempts)}})
			p.buffered -= int64(m.size)
			p.stats.userPut++
			p.stats.userDataPut += int64(len(r.Data))
			continue
		}
		p.addLocked(r.PartitionKey, r.ExplicitHashKey, r.Data, h, !m.keyless, m, int64(m.size), a.gen, a.deadline)
	}
	a.metas = a.metas[:0] // callbacks now belong to other aggregates
	if a.raw {
		a.rawData = nil
	}
	d.whole = append(d.whole, wholeOutcome{agg: a}) // no callback left; deliver recycles it
}

// expirePendingRemapLocked fails the aggregates waiting for a shard map past their TTL, so
// a failing ListShards cannot hold records beyond it.
func (p *Producer) expirePendingRemapLocked(now time.Time, d *deliveries) {
	p.pendingRemap = slices.DeleteFunc(p.pendingRemap, func(w wrongShard) bool {
		if now.Before(w.agg.deadline) {
			return false
		}
		w.agg.lastErr = fmt.Errorf("kpl: stored in unexpected shard %s and the shard map could not be refreshed", w.shardID)
		p.expireLocked(w.agg, d)
		return true
	})
}

// settleWrongShardLocked settles an aggregate Kinesis stored in shard w.shardID instead of
// the predicted one, against the current map: its records whose hash key lies in that shard
// succeed there (a consumer keeps them), the others are re-put. Kinesis took the entry either
// way, so it counts as a Kinesis record put with all its bytes (as Kinesis counts it), holding
// the records settled there.
func (p *Producer) settleWrongShardLocked(w wrongShard, d *deliveries) {
	var landed *shardRange
	if i := p.smap.indexOf(w.shardID); i >= 0 {
		landed = &p.smap.shards[i]
	}
	entrySize := w.agg.entrySize() // before remapLocked empties the aggregate
	before := len(d.single)
	p.remapLocked(w.agg, func(h HashKey) bool { return landed != nil && landed.contains(h) }, d)
	for i := before; i < len(d.single); i++ {
		d.single[i].res.ShardID, d.single[i].res.SequenceNumber = w.shardID, w.seqNo
	}
	p.stats.kinesisPut++
	p.stats.kinesisDataPut += int64(entrySize)
	p.stats.perKinesis = append(p.stats.perKinesis, float64(len(d.single)-before))
}

// applyShardMapLocked installs a new shard map. Shards that kept their id and range keep
// their state; the others are retired and their waiting aggregates re-mapped. Aggregates
// Kinesis stored in an unexpected shard are settled: records whose hash key lies in that
// shard succeed there, the others are re-put.
func (p *Producer) applyShardMapLocked(m *shardMap, now time.Time) deliveries {
	var d deliveries
	old := make(map[string]*shardState, len(p.shards))
	for _, s := range p.shards {
		old[s.id] = s
	}
	states := make([]*shardState, len(m.shards))
	changed := len(m.shards) != len(p.shards)
	for i, r := range m.shards {
		if s, ok := old[r.id]; ok && s.start == r.start && s.end == r.end {
			s.shardRange = r
			states[i] = s
			delete(old, r.id)
			continue
		}
		changed = true
		states[i] = &shardState{shardRange: r, limiter: newShardLimiter(p.cfg.RateLimitPercent, now)}
	}
	p.shards, p.smap = states, m
	if p.rr >= len(states) {
		p.rr = 0
	}
	if p.keylessNext >= len(states) {
		p.keylessNext = 0
	}
	// Aggregates stored in an unexpected shard were sent before anything still queued for
	// their shard: settle them first, then re-map the retired shards' queues, oldest first,
	// so the records of one key keep their order.
	pending := p.pendingRemap
	p.pendingRemap = nil
	for _, w := range pending {
		p.settleWrongShardLocked(w, &d)
	}
	var retired []*aggregate
	for _, s := range old {
		s.retired = true
		retired = append(retired, s.queue...)
		if s.open != nil {
			retired = append(retired, s.open)
		}
		s.open, s.queue = nil, nil
	}
	slices.SortStableFunc(retired, func(a, b *aggregate) int { return a.openedAt.Compare(b.openedAt) })
	for _, a := range retired {
		p.remapLocked(a, nil, &d)
	}
	if changed && p.state == stateStarted {
		p.log.Info("kpl: shard map changed", "shards", len(states), "retired", len(old), "remapped_aggregates", len(retired)+len(pending))
	}
	return d
}

// refreshLoop re-lists the shards periodically and when a put revealed a stale map.
func (p *Producer) refreshLoop(ctx context.Context) {
	defer p.wg.Done()
	ticker := time.NewTicker(p.cfg.ShardMapRefreshInterval)
	defer ticker.Stop()
	last := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
		case <-p.refreshCh:
		}
		if wait := minRefreshGap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		listCtx, cancel := context.WithTimeout(ctx, p.cfg.PutTimeout)
		m, err := loadShardMap(listCtx, p.client, p.cfg.StreamName)
		cancel()
		if err != nil {
			p.log.Warn("kpl: shard map refresh failed", "error", err)
			var d deliveries
			p.mu.Lock()
			p.expirePendingRemapLocked(time.Now(), &d)
			again := len(p.pendingRemap) > 0
			p.mu.Unlock()
			p.deliver(d)
			if again {
				p.requestRefresh()
			}
			continue
		}
		p.mu.Lock()
		d := p.applyShardMapLocked(m, time.Now())
		stats := p.takeStatsLocked()
		p.mu.Unlock()
		p.deliver(d)
		stats.publish(p.metrics)
		p.signal()
	}
}

// errorCode is the ErrorsByCode dimension of a failed request.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() != "" {
		return ae.ErrorCode()
	}
	return ErrorCodeTransport
}

// retryableEntryCode tells which per-entry error codes a later attempt can fix: throttling
// and Kinesis's internal failures. Other codes (KMS access or key state) fail the records.
func retryableEntryCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException":
		return true
	}
	return false
}

// retryableRequestError tells whether a whole failed request is worth retrying: throttling,
// server faults, HTTP 5xx and 429, and errors without an answer (connection reset, timeout).
// Client faults (missing stream, access denied, invalid request) are not.
func retryableRequestError(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() >= 500 || re.HTTPStatusCode() == 429) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	switch ae.ErrorCode() {
	case "ProvisionedThroughputExceededException", "KMSThrottlingException", "LimitExceededException",
		"ThrottlingException", "InternalFailure", "InternalFailureException", "ServiceUnavailable",
		"ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException":
		return true
	}
	return ae.ErrorFault() == smithy.FaultServer
}
