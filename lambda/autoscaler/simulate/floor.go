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

// floorCosts holds the fewest shard-minutes to reach each floorState, densely: -1 where a state is unreachable.
type floorCosts struct {
	r    floorRules
	cost []int
}

func newFloorCosts(r floorRules) floorCosts {
	c := floorCosts{r: r, cost: make([]int, (r.Max+1)*(r.Hold+1)*(r.Over+1))}
	for i := range c.cost {
		c.cost[i] = -1
	}
	return c
}

func (c floorCosts) index(s floorState) int {
	return (s.shards*(c.r.Hold+1)+s.low)*(c.r.Over+1) + s.over
}

func (c floorCosts) state(i int) floorState {
	over := i % (c.r.Over + 1)
	i /= c.r.Over + 1
	return floorState{shards: i / (c.r.Hold + 1), low: i % (c.r.Hold + 1), over: over}
}

// lower records cost for s if it is the fewest seen.
func (c floorCosts) lower(s floorState, cost int) {
	if i := c.index(s); c.cost[i] < 0 || cost < c.cost[i] {
		c.cost[i] = cost
	}
}

// rulesFloorMinutes finds the fewest shard-minutes by dynamic programming over floorState, starting from start
// shards with no low or high minutes behind them.
func rulesFloorMinutes(loads []Load, start int, r floorRules) int {
	cost := newFloorCosts(r)
	cost.lower(floorState{shards: min(max(start, r.Min), r.Max)}, 0)
	for _, l := range loads {
		comfortable := min(r.Max, max(r.Min, oracleShards(l, r.Up))) // fewest shards at or under Up
		carrying := min(r.Max, max(r.Min, oracleShards(l, 1)))       // fewest shards that do not throttle
		next := newFloorCosts(r)
		for i, c := range cost.cost {
			if c < 0 {
				continue
			}
			from := cost.state(i)
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
				next.lower(to, c+n)
			}
		}
		cost = next
	}
	best := math.MaxInt
	for _, c := range cost.cost {
		if c >= 0 {
			best = min(best, c)
		}
	}
	return best
}
