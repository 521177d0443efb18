package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// bruteForceFloor tries every sequence of shard counts and keeps the cheapest that obeys the rules as the issue
// states them: no minute above capacity, no more than r.Over minutes in a row above r.Up, and a lower count only
// after r.Hold minutes below r.Down at the count before.
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
			if n < min(r.Max, oracleShards(loads[t], 1)) {
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
			if tooLongAbove(loads, counts, t, r) {
				continue
			}
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

// tooLongAbove reports whether minute t ends more than r.Over minutes in a row above r.Up.
func tooLongAbove(loads []Load, counts []int, t int, r floorRules) bool {
	above := 0
	for m := t; m >= 0 && counts[m] < min(r.Max, oracleShards(loads[m], r.Up)); m-- {
		above++
	}
	return above > r.Over
}

func TestRulesFloorMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 400 {
		r := floorRules{Up: 0.7, Over: i % 3, Down: 0.35, Hold: 1 + i%3, Min: 1, Max: 4}
		loads := make([]Load, 7)
		for m := range loads {
			loads[m] = Load{Uniform: rng.Float64() * 2.6}
			if rng.IntN(4) == 0 {
				loads[m].HotKey, loads[m].HotKeyAt = rng.Float64()*0.6, rng.Float64()
			}
		}
		start := 1 + rng.IntN(r.Max)
		if got, want := rulesFloorMinutes(loads, start, r), bruteForceFloor(loads, start, r); got != want {
			t.Fatalf("case %d: floor %d shard-minutes, brute force %d (rules %+v, start %d, loads %+v)", i, got, want, r, start, loads)
		}
	}
}

// TestRulesFloorBounds checks the floor against the two oracles on every trace: never below the oracle at 100 %,
// and at most a little below the oracle at the scale-up threshold (the rules allow single minutes above it).
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
			oracle, oracleUp := oracleHours(tr, set, 1), oracleHours(tr, set, p.Config().ScaleUpUtilisation)
			if floor < oracle || floor < 0.99*oracleUp {
				t.Errorf("floor %.2f shard-hours below the oracle %.2f or well below the oracle at the threshold %.2f", floor, oracle, oracleUp)
			}
		})
	}
}
