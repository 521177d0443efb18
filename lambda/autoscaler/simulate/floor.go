package main

import (
	"math"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// floorRules are the two sizing rules, the only constraints the rules floor keeps.
type floorRules struct {
	// Up is the scale-up utilisation: no minute may run above it.
	Up float64
	// Down and Hold: the count may fall only after Hold consecutive minutes below Down at the current count.
	Down float64
	Hold int
	// Min and Max bound the shard count.
	Min, Max int
}

func floorRulesOf(cfg policy.Config) floorRules {
	return floorRules{Up: cfg.ScaleUpUtilisation, Down: cfg.ScaleDownUtilisation, Hold: cfg.ScaleDownMinutes, Min: cfg.MinShards, Max: cfg.MaxShards}
}

// rulesFloorHours is the shard-hours of the best controller that obeys the sizing rules and nothing else:
// it knows the whole trace in advance, reshards instantly, for free and as often as it likes (hash ranges included),
// but no minute may run above the scale-up utilisation, and it may lower the count only after the hold window below
// the scale-down utilisation. What separates it from the oracle is the cost of those two rules alone; a real
// controller, which also waits for CloudWatch and for resharding, can only go below it in the minutes it runs above
// the threshold or throttled while it reacts.
func rulesFloorHours(tr Trace, set Settings, r floorRules) float64 {
	set = set.withDefaults()
	loads := make([]Load, tr.Minutes)
	for t := range loads {
		loads[t] = tr.load(minuteTime(t), set.Seed)
	}
	return float64(rulesFloorMinutes(loads, tr.StartShards, r)) / 60
}

// rulesFloorMinutes finds the fewest shard-minutes by dynamic programming over (shard count, minutes low in a
// row at that count), starting from start shards with no low minutes behind them.
func rulesFloorMinutes(loads []Load, start int, r floorRules) int {
	const unreachable = math.MaxInt
	counts, hold := r.Max, r.Hold
	// cost[n][s]: fewest shard-minutes so far, ending with n shards and s minutes low in a row (capped at hold).
	newTable := func() [][]int {
		t := make([][]int, counts+1)
		for n := range t {
			t[n] = make([]int, hold+1)
			for s := range t[n] {
				t[n][s] = unreachable
			}
		}
		return t
	}
	cost, next := newTable(), newTable()
	cost[min(max(start, r.Min), counts)][0] = 0
	for _, l := range loads {
		need := min(counts, max(r.Min, oracleShards(l, r.Up)))
		low := func(n int) bool { return l.Total() < r.Down*float64(n) }
		for n := range next {
			for s := range next[n] {
				next[n][s] = unreachable
			}
		}
		relax := func(n, s, c int) { next[n][s] = min(next[n][s], c+n) }
		for n := 1; n <= counts; n++ {
			for s, c := range cost[n] {
				if c == unreachable {
					continue
				}
				for m := need; m <= counts; m++ {
					switch {
					case m == n && low(m):
						relax(m, min(s+1, hold), c)
					case m == n:
						relax(m, 0, c)
					case m < n && s < hold: // a scale-down needs a full hold window behind it
					case low(m):
						relax(m, 1, c)
					default:
						relax(m, 0, c)
					}
				}
			}
		}
		cost, next = next, cost
	}
	best := unreachable
	for n := range cost {
		for _, c := range cost[n] {
			best = min(best, c)
		}
	}
	return best
}
