package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// bruteForceFloor tries every sequence of shard counts and keeps the cheapest that obeys the rules as the issue
// states them: no minute above r.Up, and a lower count only after r.Hold minutes below r.Down at the count before.
func bruteForceFloor(loads []Load, start int, r floorRules) int {
	counts := make([]int, len(loads))
	best := math.MaxInt
	var try func(t int)
	try = func(t int) {
		if t == len(loads) {
			cost := 0
			for _, n := range counts {
				cost += n
			}
			best = min(best, cost)
			return
		}
		for n := r.Min; n <= r.Max; n++ {
			if n < min(r.Max, oracleShards(loads[t], r.Up)) {
				continue
			}
			prev := start
			if t > 0 {
				prev = counts[t-1]
			}
			if n < prev && !heldLow(loads, counts, t, prev, r) {
				continue
			}
			counts[t] = n
			try(t + 1)
		}
	}
	try(0)
	return best
}

// heldLow reports whether the r.Hold minutes before t all ran prev shards below r.Down.
func heldLow(loads []Load, counts []int, t, prev int, r floorRules) bool {
	if t < r.Hold {
		return false
	}
	for m := t - r.Hold; m < t; m++ {
		if counts[m] != prev || loads[m].Total() >= r.Down*float64(prev) {
			return false
		}
	}
	return true
}

func TestRulesFloorMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	r := floorRules{Up: 0.7, Down: 0.35, Hold: 2, Min: 1, Max: 4}
	for i := range 300 {
		loads := make([]Load, 7)
		for m := range loads {
			loads[m] = Load{Uniform: rng.Float64() * 2.6}
			if rng.IntN(4) == 0 {
				loads[m].HotKey, loads[m].HotKeyAt = rng.Float64()*0.6, rng.Float64()
			}
		}
		start := 1 + rng.IntN(r.Max)
		if got, want := rulesFloorMinutes(loads, start, r), bruteForceFloor(loads, start, r); got != want {
			t.Fatalf("case %d: floor %d shard-minutes, brute force %d (start %d, loads %+v)", i, got, want, start, loads)
		}
	}
}

// TestRulesFloorBounds checks the floor against the two oracles on every trace, and pins the fact the README and
// the closing figures rest on: with the default thresholds no trace can be run at 1.25x the oracle.
func TestRulesFloorBounds(t *testing.T) {
	t.Parallel()
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range Traces() {
		t.Run(tr.Name, func(t *testing.T) {
			set := Settings{}
			floor := rulesFloorHours(tr, set, floorRulesOf(p.Config()))
			oracle, oracle70 := oracleHours(tr, set, 1), oracleHours(tr, set, p.Config().ScaleUpUtilisation)
			if floor < oracle70-1e-9 {
				t.Errorf("floor %.2f shard-hours below the oracle at the scale-up threshold %.2f", floor, oracle70)
			}
			if floor/oracle <= 1.25 {
				t.Errorf("floor is %.2fx the oracle: a policy keeping the rules could reach 1.25x here", floor/oracle)
			}
		})
	}
}
