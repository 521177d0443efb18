package kcl

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Balancing chooses what the workers of a lease table even out.
type Balancing string

const (
	// BalancingLoad evens out the workers' load: the sum of their leases' throughput (AttrThroughputKBps), as the
	// Java KCL 3.x does for workers without CPU metrics. While no lease has a throughput yet it balances counts.
	BalancingLoad Balancing = "load"
	// BalancingCount evens out the number of leases per worker, as the Java KCL 2.x does.
	BalancingCount Balancing = "count"
)

const (
	// throughputAlpha is the weight of the newest sample in a lease's smoothed throughput: the Java KCL 3.x's
	// exponential moving average (LeaseStatsRecorder).
	throughputAlpha = 0.5
	// leaseOverheadKBps is what every lease weighs on top of its throughput: the cost of reading a shard at all
	// (polls, renewals, checkpoints). Idle shards are so spread by count, and a stream without traffic balances counts.
	leaseOverheadKBps = 1.0
	// settleRenewals is how many renewal intervals a lease stays with a new owner before it may move again, and
	// how long a worker waits after its own leases changed before it moves another: time for their throughput to
	// be measured where they are.
	settleRenewals = 3
	// moveGapShare is the largest weight a moved lease may have, as a share of the load gap between the giver and
	// the taker. Under 1, every move narrows the gap: the sum of the squared loads falls, so the balance converges
	// and no lease moves back and forth. Just over a half, an exact count balance (3 leases against 1) still moves
	// when measurement leaves the leases a hair heavier than half the gap, while the taker ends at most a fifth of
	// the gap above the giver, which no reverse move can undo (it would need a lease of at most 0.6 x 0.2 gap, yet
	// over half the gap).
	moveGapShare = 0.6
)

// takePlan is what a take pass does.
type takePlan struct {
	// take are the leases to take at once: this worker's own that it does not read, and free ones (without owner,
	// or expired) up to its share.
	take []Lease
	// handOff, when set, is a lease of a busier worker to move here by graceful hand-off.
	handOff *Lease
	// load is this worker's load before the plan, mean the mean load, workers the number of workers (for logs).
	load, mean float64
	workers    int
}

// takeView is what a take pass decides from besides the leases just listed: this worker's own state.
type takeView struct {
	me       string                     // this worker's id
	held     map[string]*heldLease      // the leases this worker holds
	observed map[string]observedCounter // when this worker saw each lease's counter and owner change
	cooldown map[string]time.Time       // leases this worker gave up, left to the others for a while
	now      time.Time
	failover time.Duration
	// balancing, threshold (the band around the mean load, as a fraction) and settle (how long a lease that moved
	// stays where it is) steer the moves between workers.
	balancing Balancing
	threshold float64
	settle    time.Duration
	// random chooses among equal candidates, so that workers taking at the same time seldom pick the same lease.
	random *rand.Rand
}

// planTakes decides what a take pass takes (see takePlan). It is pure: its random choices come from v.random, so
// tests pass a seeded one.
//
// Only active leases count (not finished, parents finished). Each weighs its throughput (see leaseWeights); a
// worker's load is the weight of the live leases it owns, and the mean load is the weight of every active lease over
// the workers (this one and every owner of a live lease). This worker takes its own leases that it does not read,
// then free leases while its load is under the mean. When it took none and no hand-off to it is in progress, it
// may move one lease here from a busier worker (chooseHandoff).
func planTakes(leases []Lease, v takeView) takePlan {
	active := activeLeases(leases)
	if len(active) == 0 {
		return takePlan{}
	}
	b := v.balanceOf(active)
	plan := takePlan{load: b.load[v.me], mean: b.mean, workers: len(b.load)}
	var free []Lease
	for _, l := range active {
		switch {
		case v.held[l.Key] != nil || v.coolingDown(l.Key):
		case l.Owner == "" || v.expired(l):
			free = append(free, l)
		case l.Owner == v.me && !l.HandingOver():
			plan.take = append(plan.take, l) // counted in my load already
		}
	}
	v.random.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, l := range free {
		if b.load[v.me] >= b.mean {
			break
		}
		plan.take = append(plan.take, l)
		b.load[v.me] += b.weight[l.Key]
	}
	if len(plan.take) > 0 || slices.ContainsFunc(active, func(l Lease) bool { return l.Owner == v.me && l.HandingOver() }) {
		return plan // one move at a time: the next waits until this worker's takes and hand-offs are done
	}
	plan.handOff = v.chooseHandoff(active, b)
	return plan
}

// balance is the load of every worker as a take pass sees it.
type balance struct {
	weight map[string]float64 // lease key -> weight
	load   map[string]float64 // worker -> weight of the live leases it owns (a lease being handed over: the new owner)
	mean   float64            // weight of every active lease / number of workers
}

// balanceOf weighs the active leases and sums each worker's load.
func (v takeView) balanceOf(active []Lease) balance {
	b := balance{weight: leaseWeights(active, v.balancing), load: map[string]float64{v.me: 0}}
	total := 0.0
	for _, l := range active {
		total += b.weight[l.Key]
		if l.Owner == "" || v.expired(l) {
			continue
		}
		b.load[l.Owner] += b.weight[l.Key]
		if _, known := b.load[l.CheckpointOwner]; l.CheckpointOwner != "" && !known {
			b.load[l.CheckpointOwner] = 0 // the old owner of a lease being handed over is a live worker too
		}
	}
	b.mean = total / float64(len(b.load))
	return b
}

// leaseWeights weighs each lease by its throughput plus leaseOverheadKBps; a lease without a throughput weighs the
// average of those with one. With BalancingCount, or while no lease has a throughput, every lease weighs the same:
// the workers balance counts.
func leaseWeights(active []Lease, balancing Balancing) map[string]float64 {
	known, sum := 0, 0.0
	for _, l := range active {
		if l.HasThroughput {
			known++
			sum += max(l.ThroughputKBps, 0) // a negative one is nonsense some tool wrote
		}
	}
	weights := make(map[string]float64, len(active))
	for _, l := range active {
		tp := 0.0
		switch {
		case balancing == BalancingCount || known == 0:
		case l.HasThroughput:
			tp = max(l.ThroughputKBps, 0)
		default:
			tp = sum / float64(known)
		}
		weights[l.Key] = tp + leaseOverheadKBps
	}
	return weights
}

// chooseHandoff returns a lease to move here from a busier worker, or nil. This worker moves a lease when its load
// is under the band around the mean (mean × (1 ± threshold)), or when another worker is over it and this worker
// is the least loaded; and only when its own leases have settled. It takes from the busiest worker that has a
// settled lease of weight at most moveGapShare of the gap between their loads (see moveGapShare), the one closest
// to what would bring one of the two to the mean.
func (v takeView) chooseHandoff(active []Lease, b balance) *Lease {
	mine := b.load[v.me]
	lowest, highest := math.Inf(1), math.Inf(-1)
	for _, load := range b.load {
		lowest, highest = min(lowest, load), max(highest, load)
	}
	under := mine < b.mean*(1-v.threshold)
	over := highest > b.mean*(1+v.threshold) && mine <= lowest
	if !under && !over || slices.ContainsFunc(active, func(l Lease) bool { return l.Owner == v.me && !v.settled(l) }) {
		return nil
	}
	donors := make([]string, 0, len(b.load))
	for w, load := range b.load {
		if w != v.me && load > mine {
			donors = append(donors, w)
		}
	}
	slices.SortFunc(donors, func(x, y string) int { return cmp.Or(cmp.Compare(b.load[y], b.load[x]), cmp.Compare(x, y)) })
	for _, donor := range donors {
		gap := b.load[donor] - mine
		ideal := min(b.load[donor]-b.mean, b.mean-mine)
		if ideal <= 0 {
			ideal = gap / 2
		}
		var best []Lease
		bestDistance := math.Inf(1)
		for _, l := range active {
			w := b.weight[l.Key]
			if l.Owner != donor || l.HandingOver() || v.expired(l) || v.coolingDown(l.Key) || !v.settled(l) ||
				w > moveGapShare*gap {
				continue
			}
			switch d := math.Abs(w - ideal); {
			case d < bestDistance:
				best, bestDistance = []Lease{l}, d
			case d == bestDistance:
				best = append(best, l)
			}
		}
		if len(best) > 0 {
			l := best[v.random.IntN(len(best))]
			return &l
		}
	}
	return nil
}

// activeLeases returns the leases to be read now: not finished, and every parent finished.
func activeLeases(leases []Lease) []Lease {
	byKey := make(map[string]Lease, len(leases))
	for _, l := range leases {
		byKey[l.Key] = l
	}
	var active []Lease
	for _, l := range leases {
		if !l.Finished() && parentsDone(l, byKey) {
			active = append(active, l)
		}
	}
	return active
}

// expired reports whether l's counter has not moved for the failover time: its owner stopped renewing it.
func (v takeView) expired(l Lease) bool {
	o, ok := v.observed[l.Key]
	return ok && v.now.Sub(o.changedAt) > v.failover
}

// settled reports whether l's owner has not changed for the settle time: its throughput is measured by its owner,
// and a lease that just moved is not moved again at once.
func (v takeView) settled(l Lease) bool {
	o, ok := v.observed[l.Key]
	return ok && v.now.Sub(o.ownerChangedAt) >= v.settle
}

func (v takeView) coolingDown(key string) bool {
	_, cooling := v.cooldown[key]
	return cooling
}

// throughputMeter measures a held lease's throughput: the payload bytes processed, sampled at each renewal into
// KB/s and smoothed with an exponential moving average, as the Java KCL 3.x's LeaseStatsRecorder. It has its own
// lock: the worker's load is read while a hung write may hold the lease's.
type throughputMeter struct {
	mu        sync.Mutex
	bytes     int64
	sampledAt time.Time
	kbps      float64
	known     bool
}

// start begins measuring at now, from the throughput the lease item holds (when it has one), so that a lease
// that moved keeps its load while its new holder measures.
func (m *throughputMeter) start(now time.Time, l Lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sampledAt, m.kbps, m.known = now, l.ThroughputKBps, l.HasThroughput
}

// add counts processed payload bytes.
func (m *throughputMeter) add(bytes int) {
	m.mu.Lock()
	m.bytes += int64(bytes)
	m.mu.Unlock()
}

// sample folds the bytes counted since the last sample into the smoothed throughput and returns it.
func (m *throughputMeter) sample(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	elapsed := now.Sub(m.sampledAt).Seconds()
	if elapsed <= 0 {
		return m.kbps
	}
	kbps := float64(m.bytes) / 1024 / elapsed
	m.bytes, m.sampledAt = 0, now
	if m.known {
		kbps = throughputAlpha*kbps + (1-throughputAlpha)*m.kbps
	}
	m.kbps, m.known = kbps, true
	return kbps
}

// current returns the smoothed throughput; known is false before the first sample of a lease without one.
func (m *throughputMeter) current() (kbps float64, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kbps, m.known
}
