package main

import (
	"sync"
	"testing"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// targetSeeds is how many seeds (which datapoints CloudWatch loses, and the load noise) the targets are checked over.
const targetSeeds = 10

// seedRows simulates every trace with the default policy over seeds 1..targetSeeds, once for all the tests below.
var seedRows = sync.OnceValues(func() ([][]Row, error) {
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		return nil, err
	}
	return SimulateSeeds(Traces(), p, Settings{}, targetSeeds)
})

// rowsBySeed returns the rows of every trace over the seeds, failing the test when the simulation failed.
func rowsBySeed(t *testing.T) [][]Row {
	t.Helper()
	rows, err := seedRows()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestNotDominatedByScalingUtils checks the first target: on no trace and seed is this policy worse than the
// Scaling Utils settings in both throttled minutes and shard-hours at once.
func TestNotDominatedByScalingUtils(t *testing.T) {
	t.Parallel()
	// GIVEN every trace replayed over the seeds
	for _, rows := range rowsBySeed(t) {
		for seed, r := range rows {
			// THEN the policy throttles no more minutes, or spends no more shard-hours, than Scaling Utils
			pol, su := r.Policy, r.ScalingUtils
			if pol.ThrottledMinutes > su.ThrottledMinutes && pol.ShardHours > su.ShardHours {
				t.Errorf("%s, seed %d: %d throttled minutes and %.1f shard-hours, Scaling Utils %d and %.1f",
					r.Trace, seed+1, pol.ThrottledMinutes, pol.ShardHours, su.ThrottledMinutes, su.ShardHours)
			}
		}
	}
}

// TestThrottledMinutes checks the second target: across all traces and seeds at most a quarter of Scaling Utils'
// throttled minutes, and none on the 10x ramp (the trend rule scales up before the ramp reaches capacity).
func TestThrottledMinutes(t *testing.T) {
	t.Parallel()
	// GIVEN every trace replayed over the seeds
	var pol, su int
	for _, rows := range rowsBySeed(t) {
		for seed, r := range rows {
			pol += r.Policy.ThrottledMinutes
			su += r.ScalingUtils.ThrottledMinutes
			// THEN the ramp never throttles
			if r.Trace == "10x ramp over 1h" && r.Policy.ThrottledMinutes > 0 {
				t.Errorf("10x ramp, seed %d: %d throttled minutes, want 0", seed+1, r.Policy.ThrottledMinutes)
			}
		}
	}
	// AND the total is at most a quarter of Scaling Utils'
	t.Logf("throttled minutes over %d seeds: policy %d, Scaling Utils %d", targetSeeds, pol, su)
	if 4*pol > su {
		t.Errorf("%d throttled minutes in all, Scaling Utils %d: want at most a quarter", pol, su)
	}
}

// TestShardHoursAgainstTheRulesFloor checks the third target: on every trace and seed the policy spends at most
// 1.15 times the rules floor of its own thresholds (the least any controller keeping them can spend).
func TestShardHoursAgainstTheRulesFloor(t *testing.T) {
	t.Parallel()
	for _, rows := range rowsBySeed(t) {
		for seed, r := range rows {
			if ratio := r.Policy.ShardHours / r.RulesFloor; ratio > 1.15 {
				t.Errorf("%s, seed %d: %.3fx the rules floor, want at most 1.15x", r.Trace, seed+1, ratio)
			}
		}
	}
}

// TestUpdateShardCountCalls checks the fourth target: never more than 10 UpdateShardCount calls in any rolling 24
// hours, and Kinesis refused none of the policy's calls (the stream model refuses an 11th, so both are checked).
func TestUpdateShardCountCalls(t *testing.T) {
	t.Parallel()
	for _, rows := range rowsBySeed(t) {
		for seed, r := range rows {
			if r.Policy.MaxCallsIn24h > 10 || r.PolicyRefused > 0 {
				t.Errorf("%s, seed %d: %d calls in 24 h, %d refused", r.Trace, seed+1, r.Policy.MaxCallsIn24h, r.PolicyRefused)
			}
		}
	}
}
