package main

import (
	"math"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// floorRules are the sizing rules, the only constraints the rules floor keeps.
type floorRules struct {
	// Up is the scale-up utilisation: no more than Over minutes in a row may run above it, and none above capacity.
	Up   float64
	Over int
	// Down and Hold: the count may fall only after Hold consecutive minutes below Down at the current count.
	Down float64
	Hold int
	// Min and Max bound the shard count.
	Min, Max int
}

// floorRulesOf reads the rules from the policy's configuration. The issue's scale-up rule ("above the target for 2
// consecutive minutes") lets ScaleUpMinutes-1 minutes in a row run above the threshold.
func floorRulesOf(cfg policy.Config) floorRules {
	return floorRules{
		Up: cfg.ScaleUpUtilisation, Over: cfg.ScaleUpMinutes - 1,
		Down: cfg.ScaleDownUtilisation, Hold: cfg.ScaleDownMinutes,
		Min: cfg.MinShards, Max: cfg.MaxShards,
	}
}

// rulesFloorHours is the shard-hours of the best controller that obeys the sizing rules and nothing else:
// it knows the whole trace in advance, reshards instantly, for free and as often as it likes (hash ranges included),
// but it never throttles, never runs more than Over minutes in a row above the scale-up utilisation, and lowers the
// count only after the hold window below the scale-down utilisation. What separates it from the oracle is the cost
// of those rules alone; a real controller, which also waits for CloudWatch and for resharding, can only go below it
// in the minutes it runs above the threshold or throttled while it reacts.
func rulesFloorHours(tr Trace, set Settings, r floorRules) float64 {
	set = set.withDefaults()
	loads := make([]Load, tr.Minutes)
	for t := range loads {
		loads[t] = tr.load(minuteTime(t), set.Seed)
	}
	return float64(rulesFloorMinutes(loads, tr.StartShards, r)) / 60
}

// floorState is where a controller stands after a minute: its shard count, how many minutes in a row it has been
// below the scale-down utilisation at that count (capped at the hold window), and how many above the scale-up one.
type floorState struct{ shards, low, over int }

// rulesFloorMinutes finds the fewest shard-minutes by dynamic programming over floorState, starting from start
// shards with no low or high minutes behind them.
func rulesFloorMinutes(loads []Load, start int, r floorRules) int {
	cost := map[floorState]int{{shards: min(max(start, r.Min), r.Max)}: 0}
	for _, l := range loads {
		comfortable := min(r.Max, max(r.Min, oracleShards(l, r.Up))) // fewest shards at or under Up
		carrying := min(r.Max, max(r.Min, oracleShards(l, 1)))       // fewest shards that do not throttle
		next := make(map[floorState]int, len(cost))
		for from, c := range cost {
			for n := carrying; n <= r.Max; n++ {
				if n < from.shards && from.low < r.Hold {
					continue // a scale-down needs a full hold window behind it
				}
				to := floorState{shards: n}
				if n < comfortable {
					if from.over >= r.Over {
						continue
					}
					to.over = from.over + 1
				}
				if l.Total() < r.Down*float64(n) {
					to.low = 1
					if n == from.shards {
						to.low = min(from.low+1, r.Hold)
					}
				}
				if old, ok := next[to]; !ok || c+n < old {
					next[to] = c + n
				}
			}
		}
		cost = next
	}
	best := math.MaxInt
	for _, c := range cost {
		best = min(best, c)
	}
	return best
}
