package kcl

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// ownedLeases returns one lease per owner ("" for none), keyed shard-a, shard-b, ...
func ownedLeases(owners ...string) []Lease {
	var ls []Lease
	for i, o := range owners {
		ls = append(ls, Lease{Key: "shard-" + string(rune('a'+i)), Owner: o, Checkpoint: CheckpointTrimHorizon})
	}
	return ls
}

// withThroughput sets the throughput of the leases, in order; a negative one leaves the lease without.
func withThroughput(ls []Lease, kbps ...float64) []Lease {
	for i, v := range kbps {
		ls[i].ThroughputKBps, ls[i].HasThroughput = max(v, 0), v >= 0
	}
	return ls
}

func leaseKeys(ls []Lease) []string {
	var ks []string
	for _, l := range ls {
		ks = append(ks, l.Key)
	}
	return ks
}

// seededRandom returns the same choices in every run.
func seededRandom() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// testTakeView is a take pass's view for worker "me" at now: every lease observed, none expired, every owner
// settled (unless stale or unsettled), 10 % band.
func testTakeView(now time.Time, leases []Lease, balancing Balancing) takeView {
	const failover = 10 * time.Second
	v := takeView{me: "me", held: map[string]*heldLease{}, observed: map[string]observedCounter{},
		cooldown: map[string]time.Time{}, now: now, failover: failover, balancing: balancing, threshold: 0.1,
		settle: failover, random: seededRandom()}
	for _, l := range leases {
		v.observed[l.Key] = observedCounter{counter: l.Counter, changedAt: now, owner: l.Owner, ownerChangedAt: now.Add(-time.Hour)}
	}
	return v
}

// planCase is a take pass's situation and what it must plan.
type planCase struct {
	leases    []Lease
	balancing Balancing // default: load
	held      []string
	stale     bool     // every counter last changed two failover times ago
	unsettled []string // leases whose owner changed just now
	cooldown  []string
	take      int    // leases to take
	takeFrom  string // owner of the leases to take ("" = unowned), checked when take > 0
	handOff   string // owner of the lease to move here by hand-off; "" = none
	handOffKB float64
	notChild  bool // the lease "child" must not be planned
}

func TestPlanTakes(t *testing.T) {
	runPlanCases(t, map[string]planCase{
		"new leases: take my share": {leases: ownedLeases("", "", "", "", "", "", "", ""), take: 8},
		"balance with two peers": {
			leases: ownedLeases("b", "b", "b", "c", "c", "c", "", ""), take: 2, takeFrom: ""},
		"at target: nothing": {
			leases: ownedLeases("me", "me", "me", "b", "b", "b", "c", "c"), held: []string{"shard-a", "shard-b", "shard-c"}},
		"expired leases are free": {
			leases: ownedLeases("dead", "dead", "dead", "dead"), stale: true, take: 4, takeFrom: "dead"},
		"cooling down leases are skipped":          {leases: ownedLeases("", ""), cooldown: []string{"shard-a"}, take: 1},
		"my own lease not held (restart) is taken": {leases: ownedLeases("me"), take: 1, takeFrom: "me"},
		"my own leases are taken beyond my share":  {leases: ownedLeases("me", "me", "me", "me", "b"), take: 4, takeFrom: "me"},
		"finished and blocked leases are not taken": {
			leases: []Lease{
				{Key: "parent", Checkpoint: "123"},
				{Key: "child", ParentShardIDs: []string{"parent"}, Checkpoint: CheckpointTrimHorizon},
				{Key: "done", Checkpoint: CheckpointShardEnd},
			}, take: 1, takeFrom: "", notChild: true},
		"a child of a finished parent is taken": {
			leases: []Lease{
				{Key: "parent", Owner: "b", Checkpoint: CheckpointShardEnd},
				{Key: "child", ParentShardIDs: []string{"parent", "gone"}, Checkpoint: CheckpointTrimHorizon},
			}, take: 1, takeFrom: ""},
		"load: free leases until the mean is reached": {
			leases: withThroughput(ownedLeases("b", "", "", "", ""), 2, 2, 2, 2, -1), take: 3, takeFrom: ""},
	})
}

func TestPlanHandoffs(t *testing.T) {
	runPlanCases(t, map[string]planCase{
		"move one from the most loaded": {leases: ownedLeases("b", "b", "b", "b", "b", "b", "c", "c"), handOff: "b"},
		"no move when the busiest holds its share and I need one": {
			leases: ownedLeases("b", "b", "b", "c", "c", "c", "me", "me"), held: []string{"shard-g", "shard-h"}},
		"a hand-off to me in progress: nothing more": {
			leases: append(ownedLeases("b", "b", "b", "b", "b"),
				Lease{Key: "moving", Owner: "me", CheckpointOwner: "b", Checkpoint: CheckpointTrimHorizon})},
		"a lease being handed over is not moved again": {
			leases: append(ownedLeases("b"), Lease{Key: "moving", Owner: "c", CheckpointOwner: "b", Checkpoint: CheckpointTrimHorizon},
				Lease{Key: "moving2", Owner: "c", CheckpointOwner: "b", Checkpoint: CheckpointTrimHorizon})},
		"load: a cold lease moves from the hot lease's owner": {
			leases:  withThroughput(ownedLeases("me", "b", "b", "c", "c", "c"), 1, 10, 1, 1, 1, 1),
			held:    []string{"shard-a"},
			handOff: "b", handOffKB: 1},
		"load: the hot lease stays alone": {
			leases: withThroughput(ownedLeases("me", "me", "b", "c", "c", "c"), 1, 1, 10, 1, 1, 1),
			held:   []string{"shard-a", "shard-b"}},
		"count balancing ignores throughput": {
			leases:    withThroughput(ownedLeases("me", "b", "b", "c", "c", "c"), 1, 10, 1, 1, 1, 1),
			balancing: BalancingCount, held: []string{"shard-a"}, handOff: "c", handOffKB: 1},
		"load without any throughput: counts": {
			leases: ownedLeases("me", "b", "b", "c", "c", "c"), held: []string{"shard-a"}, handOff: "c"},
		"load: within the band nothing moves": {
			leases: withThroughput(ownedLeases("me", "me", "b", "b", "c"), 2.5, 2.4, 2.6, 2.5, 5.2), held: []string{"shard-a", "shard-b"}},
		"a lease that moved recently stays": {
			leases:    ownedLeases("b", "b", "b", "b", "b", "b", "c", "c"),
			unsettled: []string{"shard-a", "shard-b", "shard-c", "shard-d", "shard-e", "shard-f", "shard-g", "shard-h"}},
		"no move while my own leases settle": {
			leases: ownedLeases("me", "b", "b", "b", "b", "b"), held: []string{"shard-a"}, unsettled: []string{"shard-a"}},
	})
}

// runPlanCases plans each case's take pass and checks the plan.
func runPlanCases(t *testing.T, tests map[string]planCase) {
	now := time.Now()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN the leases as listed and this worker's view of them
			v := testTakeView(now, tc.leases, cmp.Or(tc.balancing, BalancingLoad))
			for _, k := range tc.held {
				v.held[k] = &heldLease{}
			}
			for k, o := range v.observed {
				if tc.stale {
					o.changedAt = now.Add(-2 * v.failover)
				}
				if slices.Contains(tc.unsettled, k) {
					o.ownerChangedAt = now
				}
				v.observed[k] = o
			}
			for _, k := range tc.cooldown {
				v.cooldown[k] = now.Add(time.Minute)
			}
			// WHEN the take pass plans, twice with the same random source
			got := planTakes(tc.leases, v)
			v.random = seededRandom()
			again := planTakes(tc.leases, v)
			// THEN it plans the wanted takes and hand-off, the same both times (it is pure)
			if !slices.Equal(leaseKeys(got.take), leaseKeys(again.take)) || (got.handOff == nil) != (again.handOff == nil) ||
				got.handOff != nil && got.handOff.Key != again.handOff.Key {
				t.Fatalf("planned %+v, then %+v with the same random source", got, again)
			}
			checkPlan(t, got.take, v, tc.take, tc.takeFrom)
			switch {
			case tc.handOff == "" && got.handOff != nil:
				t.Fatalf("planned the hand-off of %+v, want none", *got.handOff)
			case tc.handOff != "" && (got.handOff == nil || got.handOff.Owner != tc.handOff):
				t.Fatalf("planned the hand-off of %+v, want one of %s's leases", got.handOff, tc.handOff)
			case tc.handOffKB > 0 && got.handOff.ThroughputKBps != tc.handOffKB:
				t.Fatalf("planned the hand-off of %+v, want a lease of %v KB/s", *got.handOff, tc.handOffKB)
			}
			if tc.notChild && slices.Contains(leaseKeys(got.take), "child") {
				t.Fatal("planned a child whose parent has not ended")
			}
		})
	}
}

// checkPlan fails unless plan holds want leases of owner wantFrom ("" = unowned), none held or cooling down.
func checkPlan(t *testing.T, plan []Lease, v takeView, want int, wantFrom string) {
	t.Helper()
	if len(plan) != want {
		t.Fatalf("planned %v, want %d leases", leaseKeys(plan), want)
	}
	for _, l := range plan {
		if l.Owner != wantFrom {
			t.Fatalf("planned %+v, want leases of %q", l, wantFrom)
		}
		if v.held[l.Key] != nil {
			t.Fatalf("planned a lease already held: %s", l.Key)
		}
		if v.coolingDown(l.Key) {
			t.Fatalf("planned a cooling-down lease: %s", l.Key)
		}
	}
}

// balanceSimulation runs the take passes of workers on leases of fixed throughput, with hand-offs that complete at
// once, until a whole round moves nothing.
type balanceSimulation struct {
	workers    []string
	throughput []float64 // per lease; the lease keys are shard-0, shard-1, ...
	balancing  Balancing
}

// simulationResult is where the leases ended up.
type simulationResult struct {
	owner  map[string]string // lease -> worker
	moves  map[string]int    // lease -> hand-offs
	rounds int
}

// run starts with every lease free; each round every worker runs one take pass, and time moves on by half the
// settle time.
func (s balanceSimulation) run(t *testing.T, seed uint64) simulationResult {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	res := simulationResult{owner: map[string]string{}, moves: map[string]int{}}
	ownerChangedAt := map[string]time.Time{}
	random := rand.New(rand.NewPCG(seed, seed))
	for res.rounds = 1; res.rounds <= 500; res.rounds++ {
		changed := false
		for _, w := range s.workers {
			var leases []Lease
			for i, kbps := range s.throughput {
				key := fmt.Sprintf("shard-%d", i)
				leases = append(leases, Lease{Key: key, Owner: res.owner[key], Checkpoint: "1", ThroughputKBps: kbps, HasThroughput: true})
			}
			v := testTakeView(now, leases, s.balancing)
			v.me, v.random = w, random
			for _, l := range leases {
				if l.Owner == w {
					v.held[l.Key] = &heldLease{}
				}
				if at, ok := ownerChangedAt[l.Key]; ok {
					o := v.observed[l.Key]
					o.ownerChangedAt = at
					v.observed[l.Key] = o
				}
			}
			plan := planTakes(leases, v)
			for _, l := range plan.take {
				res.owner[l.Key], ownerChangedAt[l.Key], changed = w, now, true
			}
			if plan.handOff != nil {
				res.owner[plan.handOff.Key], ownerChangedAt[plan.handOff.Key], changed = w, now, true
				res.moves[plan.handOff.Key]++
			}
		}
		now = now.Add(5 * time.Second)
		if !changed && now.Sub(slices.MaxFunc(slices.Collect(maps.Values(ownerChangedAt)), time.Time.Compare)) > 10*time.Second {
			return res
		}
	}
	t.Fatalf("no balance after %d rounds: %v", res.rounds, res.owner)
	return res
}

// loads returns each worker's load (the throughput of its leases).
func (s balanceSimulation) loads(owner map[string]string) map[string]float64 {
	loads := map[string]float64{}
	for _, w := range s.workers {
		loads[w] = 0
	}
	for i, kbps := range s.throughput {
		loads[owner[fmt.Sprintf("shard-%d", i)]] += kbps
	}
	return loads
}

// loadRatios returns the busiest worker's load over the mean, and over the lowest maximum any assignment can reach
// (the mean, or the heaviest lease when it alone is above the mean).
func loadRatios(loads map[string]float64, heaviest float64) (overMean, overBest float64) {
	total, most := 0.0, 0.0
	for _, l := range loads {
		total += l
		most = max(most, l)
	}
	mean := total / float64(len(loads))
	return most / mean, most / max(mean, heaviest)
}

func TestBalanceConverges(t *testing.T) {
	hot := []float64{10, 1, 1, 1, 1, 1}
	varied := []float64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	tests := map[string]struct {
		sim          balanceSimulation
		maxOverBest  float64 // the busiest worker's load over the lowest maximum possible
		maxMovesEach int
	}{
		"hot shard, by load": {
			sim:         balanceSimulation{workers: []string{"w1", "w2", "w3"}, throughput: hot, balancing: BalancingLoad},
			maxOverBest: 1.0, maxMovesEach: 2},
		"hot shard, by count": {
			sim:         balanceSimulation{workers: []string{"w1", "w2", "w3"}, throughput: hot, balancing: BalancingCount},
			maxOverBest: 1.1, maxMovesEach: 2},
		"twelve shards of different throughput, by load": {
			sim:         balanceSimulation{workers: []string{"w1", "w2", "w3"}, throughput: varied, balancing: BalancingLoad},
			maxOverBest: 1.1, maxMovesEach: 2},
		"twelve shards of different throughput, four workers, by load": {
			sim:         balanceSimulation{workers: []string{"w1", "w2", "w3", "w4"}, throughput: varied, balancing: BalancingLoad},
			maxOverBest: 1.15, maxMovesEach: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			worst, worstMoves := 0.0, 0
			for seed := range uint64(20) {
				// GIVEN workers starting together on free leases WHEN they run take passes until nothing moves
				res := tc.sim.run(t, seed)
				// THEN the busiest carries at most maxOverBest of the lowest maximum possible, and no lease moved more
				// than maxMovesEach times
				_, overBest := loadRatios(tc.sim.loads(res.owner), slices.Max(tc.sim.throughput))
				worst = max(worst, overBest)
				for _, n := range res.moves {
					worstMoves = max(worstMoves, n)
				}
			}
			if worst > tc.maxOverBest+1e-9 || worstMoves > tc.maxMovesEach {
				t.Fatalf("worst of 20 runs: busiest worker at %.3f of the best possible (want <= %v), a lease moved %d times (want <= %d)",
					worst, tc.maxOverBest, worstMoves, tc.maxMovesEach)
			}
			t.Logf("worst of 20 runs: busiest worker at %.3f of the best possible; a lease moved at most %d times", worst, worstMoves)
		})
	}
}

func TestThroughputMeter(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	tests := map[string]struct {
		lease Lease   // as taken
		bytes []int   // processed in each second
		want  float64 // smoothed KB/s after the last second
	}{
		"first sample is the raw rate":                {bytes: []int{2048}, want: 2},
		"then an exponential moving average of 1/2":   {bytes: []int{2048, 4096}, want: 3},
		"starts from the lease's recorded throughput": {lease: Lease{ThroughputKBps: 10, HasThroughput: true}, bytes: []int{2048}, want: 6},
		"idle seconds halve it each time":             {bytes: []int{8192, 0, 0}, want: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a meter started on the lease
			var m throughputMeter
			m.start(start, tc.lease)
			// WHEN bytes are processed and sampled every second
			got := 0.0
			for i, b := range tc.bytes {
				m.add(b)
				got = m.sample(start.Add(time.Duration(i+1) * time.Second))
			}
			// THEN the smoothed throughput is as computed by hand
			if cur, known := m.current(); math.Abs(got-tc.want) > 1e-9 || cur != got || !known {
				t.Fatalf("sampled %v (current %v, known %v), want %v", got, cur, known, tc.want)
			}
		})
	}
}
