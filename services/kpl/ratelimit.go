package kpl

import "time"

// Kinesis's write limits of one shard.
const (
	shardBytesPerSecond   = 1 << 20
	shardRecordsPerSecond = 1000
)

// tokenBucket refills at rate tokens per second up to capacity (one second's worth), so a
// shard may burst to its per-second limit and no further.
type tokenBucket struct {
	rate     float64
	capacity float64
	tokens   float64
	last     time.Time
}

func newTokenBucket(ratePerSecond float64, now time.Time) tokenBucket {
	return tokenBucket{rate: ratePerSecond, capacity: ratePerSecond, tokens: ratePerSecond, last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.capacity, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
}

// needed is the balance that must be available to take n: n itself, or a full bucket for a
// cost larger than the bucket (which then goes negative), so no cost waits forever.
func (b *tokenBucket) needed(n float64) float64 { return min(n, b.capacity) }

// wait returns how long after now n tokens can be taken (0 when they can be now).
func (b *tokenBucket) wait(now time.Time, n float64) time.Duration {
	b.refill(now)
	missing := b.needed(n) - b.tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / b.rate * float64(time.Second))
}

// shardLimiter enforces one shard's byte and record rates, as the KPL does per shard.
type shardLimiter struct {
	bytes, records tokenBucket
}

// newShardLimiter returns a limiter for percent % of a shard's write limits (1 MiB/s and
// 1000 records/s).
func newShardLimiter(percent int, now time.Time) shardLimiter {
	f := float64(percent) / 100
	return shardLimiter{
		bytes:   newTokenBucket(shardBytesPerSecond*f, now),
		records: newTokenBucket(shardRecordsPerSecond*f, now),
	}
}

// wait returns how long after now one Kinesis record of size bytes may be sent.
func (l *shardLimiter) wait(now time.Time, size int) time.Duration {
	return max(l.bytes.wait(now, float64(size)), l.records.wait(now, 1))
}

// take spends the tokens of one Kinesis record of size bytes if both buckets allow it now.
func (l *shardLimiter) take(now time.Time, size int) bool {
	if l.wait(now, size) > 0 {
		return false
	}
	l.bytes.tokens -= float64(size)
	l.records.tokens--
	return true
}
