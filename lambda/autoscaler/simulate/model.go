package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// Errors the stream model returns, named after the Kinesis exceptions they stand for.
var (
	errResourceInUse  = errors.New("ResourceInUseException: the stream is UPDATING")
	errLimitExceeded  = errors.New("LimitExceededException: 10 UpdateShardCount calls in the last 24 hours")
	errInvalidArgs    = errors.New("InvalidArgumentException")
	errShardNotOpened = errors.New("ResourceNotFoundException: no such open shard")
)

// keySpace is 2^128, the size of the Kinesis hash-key space.
var keySpace = new(big.Int).Lsh(big.NewInt(1), 128)

// Load is the demand of one minute, in shard-units: 1.0 is exactly one shard's write limit, 1 MiB/s or 1000
// records/s, whichever the trace's record size reaches first (a trace has one record size, so bytes and records
// scale together and one number is enough).
type Load struct {
	// Uniform is spread evenly over the hash-key space (many partition keys).
	Uniform float64
	// HotKey is carried by the single partition key hashing to HotKeyAt (a fraction of the key space).
	HotKey float64
	// HotKeyAt is where the hot key hashes, as a fraction of the key space in [0, 1).
	HotKeyAt float64
}

// Total is the whole stream's demand.
func (l Load) Total() float64 { return l.Uniform + l.HotKey }

type modelShard struct {
	id         string
	start, end *big.Int // inclusive hash-key range
	lo, hi     float64  // the same range as fractions of the key space
	// parent and adjacentParent are the shards this one was split or merged from ("" when none).
	parent, adjacentParent string
}

func (s modelShard) demand(l Load) float64 {
	d := l.Uniform * (s.hi - s.lo)
	if l.HotKey > 0 && l.HotKeyAt >= s.lo && l.HotKeyAt < s.hi {
		d += l.HotKey
	}
	return d
}

func (s modelShard) policyShard() policy.Shard {
	return policy.Shard{ID: s.id, StartingHashKey: s.start, EndingHashKey: s.end, ParentShardID: s.parent, AdjacentParentShardID: s.adjacentParent}
}

func fraction(k *big.Int) float64 {
	f, _ := new(big.Float).Quo(new(big.Float).SetInt(k), new(big.Float).SetInt(keySpace)).Float64()
	return f
}

func newModelShard(id int, start, end *big.Int) modelShard {
	endExcl := new(big.Int).Add(end, big.NewInt(1))
	return modelShard{id: fmt.Sprintf("shardId-%012d", id), start: start, end: end, lo: fraction(start), hi: fraction(endExcl)}
}

// StreamModel is a provisioned Kinesis stream at minute resolution: per-shard write capacity, resharding that takes
// effect after a delay (the stream is UPDATING meanwhile and old shards carry the load), only one resharding at a
// time, UpdateShardCount within [n/2, 2n] and at most 10 calls per rolling 24 hours.
type StreamModel struct {
	// UpdateDelay and SplitMergeDelay are how many minutes resharding operations take.
	UpdateDelay, SplitMergeDelay int

	shards      []modelShard
	closed      map[string]modelShard // every shard closed by a split or merge, by ID
	nextID      int
	pending     func() // applied when the running operation completes
	pendingDone int    // minute at which it completes
	updateCalls []int  // minutes of accepted UpdateShardCount calls
	shardHours  float64
	maxIn24h    int
}

// NewStreamModel returns a stream of n uniform shards.
func NewStreamModel(n, updateDelay, splitMergeDelay int) *StreamModel {
	m := &StreamModel{UpdateDelay: updateDelay, SplitMergeDelay: splitMergeDelay, closed: map[string]modelShard{}}
	m.shards = m.uniform(n)
	return m
}

func (m *StreamModel) uniform(n int) []modelShard {
	out := make([]modelShard, n)
	for i := range n {
		start := new(big.Int).Div(new(big.Int).Mul(keySpace, big.NewInt(int64(i))), big.NewInt(int64(n)))
		end := new(big.Int).Div(new(big.Int).Mul(keySpace, big.NewInt(int64(i+1))), big.NewInt(int64(n)))
		out[i] = newModelShard(m.nextID, start, end.Sub(end, big.NewInt(1)))
		m.nextID++
	}
	return out
}

// policyShards returns the open shards and their closed parents as the policy reads them.
func (m *StreamModel) policyShards() (open, parents []policy.Shard) {
	for _, sh := range m.shards {
		open = append(open, sh.policyShard())
		for _, id := range []string{sh.parent, sh.adjacentParent} {
			if p, ok := m.closed[id]; ok {
				parents = append(parents, p.policyShard())
			}
		}
	}
	return open, parents
}

// OpenShards is the number of open shards.
func (m *StreamModel) OpenShards() int { return len(m.shards) }

// Updating reports whether a resharding operation is running at minute t.
func (m *StreamModel) Updating() bool { return m.pending != nil }

// Tick completes a running operation due at minute t; call it at the start of every minute.
func (m *StreamModel) Tick(t int) {
	if m.pending != nil && t >= m.pendingDone {
		m.pending()
		m.pending = nil
	}
}

// CallsIn24h counts accepted UpdateShardCount calls in the 1440 minutes up to and including t.
func (m *StreamModel) CallsIn24h(t int) int {
	n := 0
	for _, c := range m.updateCalls {
		if c > t-1440 && c <= t {
			n++
		}
	}
	return n
}

// UpdateShardCount starts a uniform resize at minute t.
func (m *StreamModel) UpdateShardCount(t, target int) error {
	n := len(m.shards)
	switch {
	case m.pending != nil:
		return errResourceInUse
	case target > 2*n || 2*target < n || target < 1:
		return fmt.Errorf("%w: target %d outside [%d, %d]", errInvalidArgs, target, (n+1)/2, 2*n)
	case m.CallsIn24h(t) >= 10:
		return errLimitExceeded
	}
	m.updateCalls = append(m.updateCalls, t)
	m.maxIn24h = max(m.maxIn24h, m.CallsIn24h(t))
	m.pending, m.pendingDone = func() { m.shards = m.uniform(target) }, t+m.UpdateDelay
	return nil
}

// SplitShard starts splitting a shard at key at minute t.
func (m *StreamModel) SplitShard(t int, id string, key *big.Int) error {
	if m.pending != nil {
		return errResourceInUse
	}
	i := slices.IndexFunc(m.shards, func(s modelShard) bool { return s.id == id })
	if i < 0 {
		return errShardNotOpened
	}
	s := m.shards[i]
	if key.Cmp(s.start) <= 0 || key.Cmp(s.end) > 0 {
		return fmt.Errorf("%w: split key outside the shard", errInvalidArgs)
	}
	m.pending = func() {
		a := newModelShard(m.nextID, s.start, new(big.Int).Sub(key, big.NewInt(1)))
		b := newModelShard(m.nextID+1, key, s.end)
		a.parent, b.parent = s.id, s.id
		m.nextID += 2
		m.shards = slices.Replace(m.shards, i, i+1, a, b)
		m.closed[s.id] = s
	}
	m.pendingDone = t + m.SplitMergeDelay
	return nil
}

// MergeShards starts merging two adjacent shards at minute t.
func (m *StreamModel) MergeShards(t int, id, adjacent string) error {
	if m.pending != nil {
		return errResourceInUse
	}
	i := slices.IndexFunc(m.shards, func(s modelShard) bool { return s.id == id })
	j := slices.IndexFunc(m.shards, func(s modelShard) bool { return s.id == adjacent })
	if i < 0 || j < 0 {
		return errShardNotOpened
	}
	if i > j {
		i, j = j, i
	}
	if j != i+1 || new(big.Int).Add(m.shards[i].end, big.NewInt(1)).Cmp(m.shards[j].start) != 0 {
		return fmt.Errorf("%w: shards not adjacent", errInvalidArgs)
	}
	a, b := m.shards[i], m.shards[j]
	m.pending = func() {
		merged := newModelShard(m.nextID, a.start, b.end)
		merged.parent, merged.adjacentParent = a.id, b.id
		m.nextID++
		m.shards = slices.Replace(m.shards, i, j+1, merged)
		m.closed[a.id], m.closed[b.id] = a, b
	}
	m.pendingDone = t + m.SplitMergeDelay
	return nil
}

// observation is what CloudWatch records for one minute.
type observation struct {
	stream    policy.Minute
	shards    map[string]policy.Minute
	throttled bool
}

// unitBytes is the bytes per second of one shard-unit of load for records of recordSize bytes: the byte limit, or
// the record limit's bytes when records are smaller than 1 KiB.
func unitBytes(recordSize float64) float64 {
	return min(policy.WriteBytesPerShard, policy.WriteRecordsPerShard*recordSize)
}

// Serve carries one minute of load and returns its metrics. A shard over capacity accepts its capacity and rejects
// the rest (counted as throttled records); the rejected records are not replayed later.
func (m *StreamModel) Serve(start minuteTime, l Load, recordSize float64) observation {
	unit := unitBytes(recordSize) * 60
	m.shardHours += float64(len(m.shards)) / 60
	obs := observation{shards: make(map[string]policy.Minute, len(m.shards))}
	var total policy.Minute
	for _, s := range m.shards {
		d := s.demand(l)
		accepted := min(d, 1)
		if d > 1+1e-9 {
			obs.throttled = true
		}
		bytes := accepted * unit
		mi := policy.Minute{
			Start:            start.Time(),
			WriteKnown:       true,
			IncomingBytes:    bytes,
			IncomingRecords:  bytes / recordSize,
			ThrottledRecords: (d - accepted) * unit / recordSize,
		}
		obs.shards[s.id] = mi
		total.IncomingBytes += mi.IncomingBytes
		total.IncomingRecords += mi.IncomingRecords
		total.ThrottledRecords += mi.ThrottledRecords
	}
	total.Start, total.WriteKnown = start.Time(), true
	// One polling consumer and one fan-out consumer read everything that was written.
	total.GetRecordsBytes, total.FanOutBytes = total.IncomingBytes, total.IncomingBytes
	obs.stream = total
	return obs
}

// oracleShards is the fewest shards that carry l with every shard at most at capacity c (1.0 = the hard limit),
// with a free choice of hash ranges: one shard around the hot key, the rest of the key space in equal shards.
func oracleShards(l Load, c float64) int {
	const eps = 1e-9
	if l.HotKey <= 0 {
		return max(1, int(math.Ceil(l.Uniform/c-eps)))
	}
	if l.Uniform <= 0 {
		return 1
	}
	hotWidth := min(1, max(0, (c-l.HotKey)/l.Uniform))
	return 1 + int(math.Ceil((1-hotWidth)*l.Uniform/c-eps))
}

// missing decides, the same way for every policy, whether CloudWatch lost a datapoint: an FNV-1a hash of
// "seed/minute/key" below rate.
func missing(seed uint64, minute int, key string, rate float64) bool {
	var buf [64]byte
	b := strconv.AppendUint(buf[:0], seed, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(minute), 10)
	b = append(b, '/')
	b = append(b, key...)
	h := fnv.New64a()
	h.Write(b)
	return float64(h.Sum64()%1_000_000)/1_000_000 < rate
}

func parseKey(s string) (*big.Int, bool) { return new(big.Int).SetString(s, 10) }
