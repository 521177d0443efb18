package kcl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// KinesisAPI is the part of the Kinesis client a worker uses (*kinesis.Client implements it).
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

// readResult is what one read of a shard returned.
type readResult struct {
	records            []ktypes.Record
	millisBehindLatest int64
	// ended is set when every record of the (closed) shard was returned.
	ended bool
	// children are the shards that continue this one, when the read said so.
	children []string
}

// shardReader reads one shard, in order, from a start position.
type shardReader interface {
	next(ctx context.Context) (readResult, error)
	close()
}

// position is where a reader starts: a sentinel, or at a sequence number (the checkpointed aggregate is read again,
// and the user records already processed in it are filtered out).
type position struct {
	sentinel  string
	seq       string
	timestamp time.Time
}

func positionFromLease(l Lease, timestamp time.Time) position {
	if isSentinel(l.Checkpoint) || l.Checkpoint == "" {
		s := l.Checkpoint
		if s == "" {
			s = CheckpointTrimHorizon
		}
		return position{sentinel: s, timestamp: timestamp}
	}
	return position{seq: l.Checkpoint}
}

// iteratorInput returns GetShardIterator's input for a reader that returned lastSeq last (empty: none yet).
func (p position) iteratorInput(stream, shardID, lastSeq string) *kinesis.GetShardIteratorInput {
	in := &kinesis.GetShardIteratorInput{StreamName: &stream, ShardId: &shardID}
	switch {
	case lastSeq != "":
		in.ShardIteratorType = ktypes.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(lastSeq)
	case p.seq != "":
		in.ShardIteratorType = ktypes.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(p.seq)
	case p.sentinel == CheckpointLatest:
		in.ShardIteratorType = ktypes.ShardIteratorTypeLatest
	case p.sentinel == CheckpointAtTimestamp:
		in.ShardIteratorType = ktypes.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(p.timestamp)
	default:
		in.ShardIteratorType = ktypes.ShardIteratorTypeTrimHorizon
	}
	return in
}

// startingPosition returns SubscribeToShard's position for a reader that was told continuation last, or returned
// lastSeq last.
func (p position) startingPosition(continuation, lastSeq string) *ktypes.StartingPosition {
	switch {
	case continuation != "":
		// AT (not AFTER): the continuation may name the next record; a record seen twice is filtered by lastSeq.
		return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(continuation)}
	case lastSeq != "":
		return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(lastSeq)}
	case p.seq != "":
		return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(p.seq)}
	case p.sentinel == CheckpointLatest:
		return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeLatest}
	case p.sentinel == CheckpointAtTimestamp:
		return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(p.timestamp)}
	}
	return &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}
}

func childIDs(children []ktypes.ChildShard) []string {
	ids := make([]string, 0, len(children))
	for _, c := range children {
		if c.ShardId != nil {
			ids = append(ids, *c.ShardId)
		}
	}
	return ids
}

// sleepCtx waits for d or until ctx is done; it reports whether the full pause elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pollingReader reads a shard with GetRecords, at most one call per minPollInterval (5 per second, the per-shard
// limit), pausing idleInterval after an empty read at the tip of the shard.
type pollingReader struct {
	api          KinesisAPI
	stream       string
	shardID      string
	limit        int32
	idleInterval time.Duration
	start        position

	iterator *string
	lastSeq  string
	nextCall time.Time
}

func (p *pollingReader) next(ctx context.Context) (readResult, error) {
	if p.iterator == nil {
		out, err := p.api.GetShardIterator(ctx, p.start.iteratorInput(p.stream, p.shardID, p.lastSeq))
		if err != nil {
			return readResult{}, fmt.Errorf("get shard iterator for %s: %w", p.shardID, err)
		}
		if out.ShardIterator == nil {
			return readResult{ended: true}, nil
		}
		p.iterator = out.ShardIterator
	}
	if !sleepCtx(ctx, time.Until(p.nextCall)) {
		return readResult{}, ctx.Err()
	}
	out, err := p.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: p.iterator, Limit: aws.Int32(p.limit)})
	p.nextCall = time.Now().Add(minPollInterval)
	if err != nil {
		var expired *ktypes.ExpiredIteratorException
		if errors.As(err, &expired) {
			p.iterator = nil // re-positioned after lastSeq on the next call
			return readResult{}, nil
		}
		return readResult{}, fmt.Errorf("get records from %s: %w", p.shardID, err)
	}
	res := readResult{records: out.Records, millisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}
	if n := len(out.Records); n > 0 {
		p.lastSeq = aws.ToString(out.Records[n-1].SequenceNumber)
	}
	p.iterator = out.NextShardIterator
	if p.iterator == nil {
		res.ended = true
		res.children = childIDs(out.ChildShards)
	} else if len(out.Records) == 0 && res.millisBehindLatest == 0 {
		p.nextCall = time.Now().Add(p.idleInterval)
	}
	return res, nil
}

func (p *pollingReader) close() {}

// fanOutReader reads a shard with SubscribeToShard. It resubscribes before AWS's 5-minute limit and after errors,
// from the last continuation sequence number. While the shard is idle it probes with GetRecords whether the shard
// has ended, for endpoints that never send ChildShards over fan-out.
type fanOutReader struct {
	api              KinesisAPI
	stream           string
	shardID          string
	consumerARN      string
	start            position
	resubscribeAfter time.Duration
	probeInterval    time.Duration

	sub          *kinesis.SubscribeToShardEventStream
	subCancel    context.CancelFunc
	subscribedAt time.Time
	continuation string
	lastSeq      string
	lastProbe    time.Time
}

func (r *fanOutReader) subscribe(ctx context.Context) error {
	// The subscription's event stream outlives this call: it gets its own context, cancelled by closeSub. While the
	// call itself waits for the initial response, ctx's end (lease lost, shutdown, abrupt stop) cancels it too, so
	// an endpoint that accepts and never answers cannot hold the worker.
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	out, err := r.api.SubscribeToShard(subCtx, &kinesis.SubscribeToShardInput{
		ConsumerARN:      &r.consumerARN,
		ShardId:          &r.shardID,
		StartingPosition: r.start.startingPosition(r.continuation, r.lastSeq),
	}, ownEventStreamCodec)
	stop()
	if err != nil {
		cancel()
		return fmt.Errorf("subscribe to %s: %w", r.shardID, err)
	}
	r.sub = out.GetStream()
	r.subCancel = cancel
	r.subscribedAt = time.Now()
	return nil
}

// ownEventStreamCodec gives one subscription a protocol of its own: the SDK's default protocol shares one event
// stream codec, with scratch state, between every stream of a client, which races when several shards are read at
// once (aws/smithy-go issue 714).
func ownEventStreamCodec(o *kinesis.Options) {
	o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
}

func (r *fanOutReader) closeSub() {
	if r.sub != nil {
		_ = r.sub.Close()
		r.sub = nil
	}
	if r.subCancel != nil {
		r.subCancel()
		r.subCancel = nil
	}
}

func (r *fanOutReader) close() { r.closeSub() }

func (r *fanOutReader) next(ctx context.Context) (readResult, error) {
	for {
		if r.sub == nil {
			if err := r.subscribe(ctx); err != nil {
				return readResult{}, err
			}
		}
		remaining := r.resubscribeAfter - time.Since(r.subscribedAt)
		if remaining <= 0 {
			r.closeSub()
			continue
		}
		timer := time.NewTimer(min(remaining, r.probeInterval))
		select {
		case <-ctx.Done():
			timer.Stop()
			return readResult{}, ctx.Err()
		case ev, ok := <-r.sub.Events():
			timer.Stop()
			if !ok {
				err := r.sub.Err()
				r.closeSub()
				if err != nil {
					return readResult{}, fmt.Errorf("subscription to %s: %w", r.shardID, err)
				}
				continue
			}
			e, isEvent := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue
			}
			res := r.handle(e.Value)
			if len(res.records) == 0 && !res.ended && time.Since(r.lastProbe) >= r.probeInterval {
				return r.probeEnd(ctx)
			}
			return res, nil
		case <-timer.C:
			if time.Since(r.subscribedAt) >= r.resubscribeAfter {
				continue
			}
			return r.probeEnd(ctx)
		}
	}
}

// handle turns one event into a read result, dropping records seen before a resubscription.
func (r *fanOutReader) handle(ev ktypes.SubscribeToShardEvent) readResult {
	recs := ev.Records
	if r.lastSeq != "" {
		i := 0
		for i < len(recs) && compareSequenceNumbers(aws.ToString(recs[i].SequenceNumber), r.lastSeq) <= 0 {
			i++
		}
		recs = recs[i:]
	}
	if n := len(recs); n > 0 {
		r.lastSeq = aws.ToString(recs[n-1].SequenceNumber)
	}
	res := readResult{records: recs, millisBehindLatest: aws.ToInt64(ev.MillisBehindLatest)}
	if ev.ContinuationSequenceNumber == nil {
		res.ended = true
		res.children = childIDs(ev.ChildShards)
		r.closeSub()
		return res
	}
	r.continuation = *ev.ContinuationSequenceNumber
	return res
}

// probeEnd reads the shard once after the last record seen: no record and no next iterator means it has ended.
func (r *fanOutReader) probeEnd(ctx context.Context) (readResult, error) {
	r.lastProbe = time.Now()
	it, err := r.api.GetShardIterator(ctx, r.start.iteratorInput(r.stream, r.shardID, r.lastSeq))
	if err != nil {
		return readResult{}, fmt.Errorf("probe end of %s: %w", r.shardID, err)
	}
	if it.ShardIterator == nil {
		r.closeSub()
		return readResult{ended: true}, nil
	}
	out, err := r.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
	if err != nil {
		return readResult{}, fmt.Errorf("probe end of %s: %w", r.shardID, err)
	}
	if len(out.Records) == 0 && out.NextShardIterator == nil {
		r.closeSub()
		return readResult{ended: true, children: childIDs(out.ChildShards)}, nil
	}
	return readResult{millisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}, nil
}
