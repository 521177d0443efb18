package policy

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)

// minuteAt returns the start of the minute k minutes before the newest complete one (k=0 is 11:59).
func minuteAt(k int) time.Time {
	return now.Truncate(time.Minute).Add(-time.Duration(k+1) * time.Minute)
}

// utilMinutes builds stream minutes with the given write-bytes utilisation of n shards, newest last.
// A negative value leaves that minute without datapoints.
func utilMinutes(n int, utils ...float64) []Minute {
	out := []Minute{}
	for i, u := range utils {
		if u < 0 {
			continue
		}
		k := len(utils) - 1 - i
		out = append(out, Minute{
			Start:           minuteAt(k),
			WriteKnown:      true,
			IncomingBytes:   u * float64(n) * WriteBytesPerShard * 60,
			IncomingRecords: 6000,
		})
	}
	return out
}

func repeat(u float64, k int) []float64 {
	out := make([]float64, k)
	for i := range out {
		out[i] = u
	}
	return out
}

func uniformShards(n int) []Shard {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	out := make([]Shard, n)
	for i := range n {
		start := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i))), big.NewInt(int64(n)))
		end := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i+1))), big.NewInt(int64(n)))
		end.Sub(end, big.NewInt(1))
		out[i] = Shard{ID: "shardId-" + string(rune('a'+i)), StartingHashKey: start, EndingHashKey: end}
	}
	return out
}

func calls(ago ...time.Duration) History {
	h := History{}
	for _, a := range ago {
		h.UpdateShardCountCalls = append(h.UpdateShardCountCalls, now.Add(-a))
	}
	if len(ago) > 0 {
		h.LastAction = now.Add(-ago[len(ago)-1])
		h.LastActionKind = ActionUpdateShardCount
		h.Settled = h.LastAction.Add(2 * time.Minute)
	}
	return h
}

func hoursAgo(k int) []time.Duration {
	out := make([]time.Duration, k)
	for i := range out {
		out[i] = time.Duration(20-i) * time.Hour
	}
	return out
}

// merged returns h with a MergeShards action ago before now, settled a minute later.
func merged(h History, ago time.Duration) History {
	h = h.Record(ActionMergeShards, now.Add(-ago))
	h.Settled = now.Add(-ago + time.Minute)
	return h
}

// shardLoads gives the shards, in order, 15 shard-level minutes each at the given utilisation of one shard.
func shardLoads(utils ...float64) func([]Shard) map[string][]Minute {
	return func(sh []Shard) map[string][]Minute {
		m := map[string][]Minute{}
		for i, u := range utils {
			m[sh[i].ID] = utilMinutes(1, repeat(u, 15)...)
		}
		return m
	}
}

// allShards gives every shard the same shard-level minutes at the given utilisation of one shard.
func allShards(utils []float64) func([]Shard) map[string][]Minute {
	return func(sh []Shard) map[string][]Minute {
		m := map[string][]Minute{}
		for _, s := range sh {
			m[s.ID] = utilMinutes(1, utils...)
		}
		return m
	}
}

func withThrottle(ms []Minute, k int, records float64) []Minute {
	for i := range ms {
		if ms[i].Start.Equal(minuteAt(k)) {
			ms[i].ThrottledRecords = records
		}
	}
	return ms
}

// decideCase is one decision the policy must make: the input it gets and the decision it must give.
type decideCase struct {
	cfg        Config
	shards     int
	stream     []Minute
	shardMins  func([]Shard) map[string][]Minute
	history    History
	wantAction Action
	wantRule   Rule
	wantTarget int
}

// runDecideCases runs each case as a subtest.
func runDecideCases(t *testing.T, tests map[string]decideCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a policy with the case's config and the case's shards, minutes and history
			p, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			shards := uniformShards(tc.shards)
			in := Input{Now: now, Shards: shards, Stream: tc.stream, History: tc.history}
			if tc.shardMins != nil {
				in.ShardMinutes = tc.shardMins(shards)
			}
			// WHEN it decides
			d := p.Decide(in)
			// THEN it takes the expected action by the expected rule, says why, and stays within [n/2, 2n]
			if d.Action != tc.wantAction || d.Rule != tc.wantRule || d.TargetShardCount != tc.wantTarget {
				t.Fatalf("got %s/%s target %d, want %s/%s target %d; reason: %s", d.Action, d.Rule, d.TargetShardCount, tc.wantAction, tc.wantRule, tc.wantTarget, d.Reason)
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
			if d.Action == ActionUpdateShardCount && (d.TargetShardCount > 2*tc.shards || 2*d.TargetShardCount < tc.shards) {
				t.Errorf("target %d outside [n/2, 2n] for n=%d", d.TargetShardCount, tc.shards)
			}
		})
	}
}

// Rule 1: below MinShards or above MaxShards the stream moves towards the bound, within Kinesis' per-call limits.
func TestRuleBounds(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"no open shards": {
			shards: 0, wantAction: ActionNone, wantRule: RuleNoShards, wantTarget: 0,
		},
		"below min scales to min within 2x": {
			cfg:    Config{MinShards: 10, MaxShards: 20},
			shards: 4, stream: utilMinutes(4, 0.5, 0.5),
			wantAction: ActionUpdateShardCount, wantRule: RuleBelowMin, wantTarget: 8,
		},
		"above max scales down to max within half": {
			cfg:    Config{MaxShards: 4},
			shards: 6, stream: utilMinutes(6, 0.5, 0.5),
			wantAction: ActionUpdateShardCount, wantRule: RuleAboveMax, wantTarget: 4,
		},
		"above max keeps the reserve": {
			cfg:    Config{MaxShards: 4},
			shards: 6, stream: utilMinutes(6, 0.5), history: calls(hoursAgo(7)...),
			wantAction: ActionNone, wantRule: RuleReserve, wantTarget: 6,
		},
	})
}

// Rule 2: without a recent known minute the load is unknown, never zero.
func TestRuleNoData(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"no datapoints is unknown, not idle": {
			shards: 8, stream: nil,
			wantAction: ActionNone, wantRule: RuleNoData, wantTarget: 8,
		},
		"stale datapoints are unknown": {
			shards: 8, stream: utilMinutes(8, append(repeat(0.05, 20), repeat(-1, 6)...)...),
			wantAction: ActionNone, wantRule: RuleNoData, wantTarget: 8,
		},
	})
}

// Rule 3, when: utilisation above the threshold for consecutive minutes, or throttling, both measured on the current
// shard layout only.
func TestRuleScaleUpCause(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"two minutes above target scale up": {
			shards: 4, stream: utilMinutes(4, 0.5, 0.8, 0.8),
			// a jump is not a ramp: 3.2/0.70 = 4.6.
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 5,
		},
		"one minute above target waits": {
			shards: 4, stream: utilMinutes(4, 0.5, 0.5, 0.8),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 4,
		},
		"high minutes separated by a gap are not consecutive": {
			shards: 4, stream: utilMinutes(4, 0.5, 0.8, -1, 0.8),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 4,
		},
		"newest minute not yet published still scales up on the two before": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8, -1),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 5,
		},
		"any throttling scales up at once": {
			shards: 4, stream: withThrottle(utilMinutes(4, 0.5, 0.6), 0, 20),
			wantAction: ActionUpdateShardCount, wantRule: RuleThrottled, wantTarget: 5,
		},
		"throttling before the last action settled is ignored": {
			shards: 8, stream: withThrottle(utilMinutes(8, 0.4, 0.4, 0.4), 1, 500),
			history:    History{LastAction: minuteAt(4), LastActionKind: ActionUpdateShardCount, Settled: minuteAt(0).Add(10 * time.Second), UpdateShardCountCalls: []time.Time{minuteAt(4)}},
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"throttling after an unsettled action is ignored": {
			shards: 8, stream: withThrottle(utilMinutes(8, 0.4, 0.4, 0.4), 0, 500),
			history:    History{LastAction: minuteAt(4), LastActionKind: ActionUpdateShardCount, UpdateShardCountCalls: []time.Time{minuteAt(4)}},
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"throttling after the action settled counts": {
			shards: 8, stream: withThrottle(utilMinutes(8, 0.4, 0.4, 0.4), 0, 500),
			history:    History{LastAction: minuteAt(4), LastActionKind: ActionUpdateShardCount, Settled: minuteAt(2), UpdateShardCountCalls: []time.Time{minuteAt(4)}},
			wantAction: ActionUpdateShardCount, wantRule: RuleThrottled, wantTarget: 9,
		},
		"high minutes from before the last action settled do not scale up again": {
			shards: 8, stream: utilMinutes(8, 0.9, 0.9, 0.9),
			history:    History{LastAction: minuteAt(5), LastActionKind: ActionUpdateShardCount, Settled: minuteAt(0).Add(10 * time.Second), UpdateShardCountCalls: []time.Time{minuteAt(5)}},
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"high minutes after the last action settled scale up": {
			shards: 8, stream: utilMinutes(8, 0.9, 0.9, 0.9),
			history:    History{LastAction: minuteAt(5), LastActionKind: ActionUpdateShardCount, Settled: minuteAt(1), UpdateShardCountCalls: []time.Time{minuteAt(5)}},
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 11, // 7.2/0.70 = 10.3
		},
	})
}

// Rule 3, on the trend: a rising load that would go above the threshold before a resize decided later could land
// scales up now, from a ramp fitted over the last minutes or from the newest minute leaving the noise band.
func TestRuleScaleUpTrend(t *testing.T) {
	noisy := func(level, amp float64, k int) []float64 {
		out := make([]float64, k)
		for i := range out {
			out[i] = level + amp*float64(i%3-1)
		}
		return out
	}
	rising := func(from, step float64, k int) []float64 {
		out := make([]float64, k)
		for i := range out {
			out[i] = from + step*float64(i)
		}
		return out
	}
	runDecideCases(t, map[string]decideCase{
		"the onset of a ramp scales up before the threshold": {
			// 1 shard of load on 2 shards jumps to 1.16: over the lead time (5.5 minutes) that is 2.04 shards,
			// above 75% of 2; sized for that at 70%.
			shards: 2, stream: utilMinutes(2, append(noisy(0.5, 0.01, 11), 0.58)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUpTrend, wantTarget: 3,
		},
		"noise inside its band is not an onset": {
			shards: 2, stream: utilMinutes(2, append(noisy(0.5, 0.05, 11), 0.55)...),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 2,
		},
		"a ramp is acted on before it reaches the threshold": {
			// 2.4 shards rising 0.12 per minute: 3.06 in 5.5 minutes (1 min of age, 4 of resharding and half a
			// minute), above 75% of 4; sized for 15.5 minutes ahead, 4.26 at 70%.
			shards: 4, stream: utilMinutes(4, rising(0.45, 0.03, 6)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUpTrend, wantTarget: 7,
		},
		"a ramp that stays below the threshold over the lead time waits": {
			shards: 8, stream: utilMinutes(8, rising(0.30, 0.01, 6)...),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"load above the threshold before the last action settled is not a trend": {
			shards: 8, stream: utilMinutes(8, rising(0.80, 0.01, 6)...),
			history:    History{LastAction: minuteAt(5), LastActionKind: ActionUpdateShardCount, Settled: minuteAt(0).Add(10 * time.Second), UpdateShardCountCalls: []time.Time{minuteAt(5)}},
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"a hot shard's jump is split, not extrapolated": {
			shards: 4, stream: withThrottle(utilMinutes(4, append(noisy(0.5, 0.01, 11), 0.66)...), 0, 30),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{
					sh[0].ID: utilMinutes(1, 0.5, 0.5), sh[1].ID: withThrottle(utilMinutes(1, 0.5, 1.0), 0, 30),
					sh[2].ID: utilMinutes(1, 0.5, 0.5), sh[3].ID: utilMinutes(1, 0.5, 0.5),
				}
			},
			wantAction: ActionSplitShard, wantRule: RuleHotShard, wantTarget: 5,
		},
	})
}

// Rule 3, how far: sized for the target utilisation (with more headroom when calls are scarce), within MaxShards and
// the daily UpdateShardCount limit.
func TestRuleScaleUpSize(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"a ramp is extrapolated over the lead time and the growth horizon": {
			shards: 8, stream: utilMinutes(8, 0.56, 0.61, 0.66, 0.71, 0.76, 0.81),
			// load 6.48 shards rising 0.4 per minute: 6.48+0.4*15.5 = 12.68 at 70% -> capped at 2n.
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 16,
		},
		"steady load above target sizes for the target utilisation": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8, 0.8),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 5, // 3.2/0.70 = 4.6
		},
		"a scale-up lands below the threshold, so it is not repeated": {
			// 4 shards at 80% scaled to 5 (3.2/0.70 = 4.6): the same load is 64% of 5 shards.
			shards: 5, stream: utilMinutes(5, repeat(0.64, 5)...),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 5,
		},
		"scale-up capped at max shards": {
			cfg:    Config{MaxShards: 6},
			shards: 4, stream: utilMinutes(4, 0.9, 0.9),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 6,
		},
		"at max shards nothing to do": {
			cfg:    Config{MaxShards: 4},
			shards: 4, stream: utilMinutes(4, 0.9, 0.9),
			wantAction: ActionNone, wantRule: RuleAtMax, wantTarget: 4,
		},
		"scale-up may use the reserved calls": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(hoursAgo(9)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 7, // 3.2/0.5: scarce calls buy more headroom,
		},
		"scale-up that leaves the reserve sizes for the target": {
			// 6 calls used: 3 remain after this one, the full reserve.
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(hoursAgo(6)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 5,
		},
		"scale-up that eats into the reserve sizes with more headroom": {
			// 7 calls used: 2 remain after this one, so 3.2/0.5 = 6.4.
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(hoursAgo(7)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 7,
		},
		"scale-up blocked when every call of the last 24 h is used": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(hoursAgo(10)...),
			wantAction: ActionNone, wantRule: RuleCallLimit, wantTarget: 4,
		},
		"calls older than 24 h do not count": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(append(hoursAgo(9), 25*time.Hour)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 7,
		},
	})
}

// The utilisation the rules act on is the largest of the write bytes, write records, shared GetRecords and busiest
// fan-out consumer ratios.
func TestLoadCountsEveryLimit(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"records limit counts like bytes": {
			shards: 2, stream: []Minute{
				{Start: minuteAt(1), WriteKnown: true, IncomingBytes: 1000, IncomingRecords: 1800 * 60},
				{Start: minuteAt(0), WriteKnown: true, IncomingBytes: 1000, IncomingRecords: 1800 * 60},
			},
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 3,
		},
		"polling reads share 2 MiB/s per shard": {
			shards: 2, stream: []Minute{
				{Start: minuteAt(1), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, GetRecordsBytes: 3.5 * ReadBytesPerShard * 60},
				{Start: minuteAt(0), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, GetRecordsBytes: 3.5 * ReadBytesPerShard * 60},
			},
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 4,
		},
		"each fan-out consumer has its own 2 MiB/s per shard": {
			// Three fan-out consumers each reading all 1 MiB/s: the busiest uses 25% of its pipe, so no scale-up,
			// although their sum would look like 75%.
			shards: 2, stream: []Minute{
				{Start: minuteAt(1), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, FanOutBytes: 1 * ReadBytesPerShard * 60 / 2},
				{Start: minuteAt(0), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, FanOutBytes: 1 * ReadBytesPerShard * 60 / 2},
			},
			wantAction: ActionNone, wantRule: RuleNotEnoughData, wantTarget: 2,
		},
		"a fan-out consumer at its pipe's limit scales up": {
			shards: 2, stream: []Minute{
				{Start: minuteAt(1), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, FanOutBytes: 1.8 * ReadBytesPerShard * 60},
				{Start: minuteAt(0), WriteKnown: true, IncomingBytes: 0.5 * WriteBytesPerShard * 60, IncomingRecords: 10, FanOutBytes: 1.8 * ReadBytesPerShard * 60},
			},
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleUp, wantTarget: 3,
		},
	})
}

// Rule 4: a hot shard on a stream that is not hot is split; throttling on a hot stream, or without shard-level
// metrics, scales the stream instead (rule 3).
func TestRuleHotShard(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"hot shard is split while the stream is not hot": {
			shards: 4, stream: withThrottle(utilMinutes(4, 0.4, 0.45), 0, 30),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{
					sh[0].ID: utilMinutes(1, 0.2, 0.2), sh[1].ID: withThrottle(utilMinutes(1, 1.0, 1.0), 0, 30),
					sh[2].ID: utilMinutes(1, 0.3, 0.3), sh[3].ID: utilMinutes(1, 0.3, 0.3),
				}
			},
			wantAction: ActionSplitShard, wantRule: RuleHotShard, wantTarget: 5,
		},
		"shard above the hot threshold for two minutes is split": {
			shards: 4, stream: utilMinutes(4, 0.4, 0.45),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{sh[2].ID: utilMinutes(1, 0.95, 0.95), sh[0].ID: utilMinutes(1, 0.2, 0.2)}
			},
			wantAction: ActionSplitShard, wantRule: RuleHotShard, wantTarget: 5,
		},
		"throttling on a hot stream scales the stream, not the shard": {
			shards: 4, stream: withThrottle(utilMinutes(4, 0.5, 0.9), 0, 30),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{sh[1].ID: withThrottle(utilMinutes(1, 1.0, 1.0), 0, 30)}
			},
			wantAction: ActionUpdateShardCount, wantRule: RuleThrottled, wantTarget: 6,
		},
		"hot shard split when every UpdateShardCount call is used": {
			shards: 4, stream: utilMinutes(4, 0.8, 0.8), history: calls(hoursAgo(10)...),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{sh[1].ID: withThrottle(utilMinutes(1, 1.0, 1.0), 0, 30)}
			},
			wantAction: ActionSplitShard, wantRule: RuleHotShard, wantTarget: 5,
		},
		"throttling without shard-level metrics scales the stream": {
			shards: 4, stream: withThrottle(utilMinutes(4, 0.4, 0.45), 0, 30),
			wantAction: ActionUpdateShardCount, wantRule: RuleThrottled, wantTarget: 5,
		},
	})
}

// Rule 5: a scale-down after a hold window of known low minutes, sized on its peak, held back by missing data, the
// cool-down and the calls reserved for scale-ups.
func TestRuleScaleDown(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"scale down after the hold time": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 4, // 1.6/0.70 = 2.3, but >= n/2
		},
		"scale down sized on the window's peak": {
			shards: 10, stream: utilMinutes(10, append(append(repeat(0.2, 7), 0.33), repeat(0.2, 7)...)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 5, // 3.3/0.70 = 4.7, not 2.0/0.70
		},
		"a scale-down lands below the threshold": {
			// 10 shards at 34%: 3.4/0.70 = 4.9 gives 5 shards at 68%, below 75% with room for 10% growth.
			shards: 10, stream: utilMinutes(10, repeat(0.34, 15)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 5,
		},
		"scale down never below min shards": {
			cfg:    Config{MinShards: 6},
			shards: 8, stream: utilMinutes(8, repeat(0.1, 15)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 6,
		},
		"one minute above the low threshold resets the hold": {
			shards: 8, stream: utilMinutes(8, append(append(repeat(0.2, 7), 0.4), repeat(0.2, 7)...)...),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"missing minutes are not low minutes": {
			shards: 8, stream: utilMinutes(8, append(append(repeat(0.2, 5), repeat(-1, 3)...), repeat(0.2, 7)...)...),
			wantAction: ActionNone, wantRule: RuleNotEnoughData, wantTarget: 8,
		},
		"a hold window older than the data is not yet held": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 14)...),
			wantAction: ActionNone, wantRule: RuleNotEnoughData, wantTarget: 8,
		},
		"two missing minutes are tolerated": {
			shards: 8, stream: utilMinutes(8, append(append(repeat(0.2, 5), repeat(-1, 2)...), repeat(0.2, 8)...)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 4,
		},
		"scale down waits for the cool-down": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...), history: calls(10 * time.Minute),
			wantAction: ActionNone, wantRule: RuleCooldown, wantTarget: 8,
		},
		"a scale-down continues one before it without the cool-down": {
			// 8 shards at 20% after a scale-down from 16 ten minutes ago: Kinesis halves at most per call.
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...),
			history:    History{}.RecordDecision(Decision{Action: ActionUpdateShardCount, CurrentShardCount: 16, TargetShardCount: 8}, now.Add(-10*time.Minute)),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 4,
		},
		"scale down after the cool-down": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...), history: calls(16 * time.Minute),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 4,
		},
		"scale down keeps the reserve": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...), history: calls(hoursAgo(7)...),
			wantAction: ActionNone, wantRule: RuleReserve, wantTarget: 8,
		},
		"scale down may use calls above the reserve": {
			shards: 8, stream: utilMinutes(8, repeat(0.2, 15)...), history: calls(hoursAgo(6)...),
			wantAction: ActionUpdateShardCount, wantRule: RuleScaleDown, wantTarget: 4,
		},
		"throttling in the hold window blocks scale-down": {
			shards: 8, stream: withThrottle(utilMinutes(8, repeat(0.2, 15)...), 10, 5),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 8,
		},
		"the cool-down after a merge still holds back UpdateShardCount": {
			shards: 4, stream: utilMinutes(4, repeat(0.2, 15)...), history: merged(History{}, 2*time.Minute),
			wantAction: ActionNone, wantRule: RuleCooldown, wantTarget: 4,
		},
	})
}

// Rule 6: two adjacent shards that fit in one for the whole hold window are merged, the best fit first; merges
// continue a scale-down without the cool-down and stand in for it when only reserved calls remain.
func TestRuleMergeShards(t *testing.T) {
	runDecideCases(t, map[string]decideCase{
		"adjacent cold shards are merged": {
			shards: 4, stream: utilMinutes(4, repeat(0.4, 15)...),
			shardMins:  shardLoads(0.7, 0.5, 0.2, 0.2),
			wantAction: ActionMergeShards, wantRule: RuleMergeShards, wantTarget: 3,
		},
		"cold shards that are not adjacent are not merged": {
			shards: 4, stream: utilMinutes(4, repeat(0.4, 15)...),
			shardMins:  shardLoads(0.2, 0.7, 0.2, 0.6),
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 4,
		},
		"cold shards with a missing-data gap are not merged": {
			shards: 4, stream: utilMinutes(4, repeat(0.4, 15)...),
			shardMins: func(sh []Shard) map[string][]Minute {
				return map[string][]Minute{
					sh[0].ID: utilMinutes(1, repeat(0.7, 15)...), sh[1].ID: utilMinutes(1, repeat(0.5, 15)...),
					sh[2].ID: utilMinutes(1, append(repeat(-1, 5), repeat(0.2, 10)...)...), sh[3].ID: utilMinutes(1, repeat(0.2, 15)...),
				}
			},
			wantAction: ActionNone, wantRule: RuleSteady, wantTarget: 4,
		},
		"merge instead of scale-down when only reserved calls remain": {
			shards: 4, stream: utilMinutes(4, repeat(0.2, 15)...), history: calls(hoursAgo(7)...),
			shardMins:  allShards(repeat(0.2, 15)),
			wantAction: ActionMergeShards, wantRule: RuleMergeShards, wantTarget: 3,
		},
		"merges continue without the cool-down": {
			shards: 4, stream: utilMinutes(4, repeat(0.2, 15)...), history: merged(History{}, 2*time.Minute),
			shardMins:  allShards(repeat(0.2, 15)),
			wantAction: ActionMergeShards, wantRule: RuleMergeShards, wantTarget: 3,
		},
		"merges continue without the cool-down when only reserved calls remain": {
			shards: 4, stream: utilMinutes(4, repeat(0.2, 15)...), history: merged(calls(hoursAgo(7)...), 2*time.Minute),
			shardMins:  allShards(repeat(0.2, 15)),
			wantAction: ActionMergeShards, wantRule: RuleMergeShards, wantTarget: 3,
		},
		"a merge right after an UpdateShardCount waits for the cool-down": {
			shards: 4, stream: utilMinutes(4, repeat(0.2, 15)...), history: calls(5 * time.Minute),
			shardMins:  allShards(repeat(0.2, 15)),
			wantAction: ActionNone, wantRule: RuleCooldown, wantTarget: 4,
		},
		"merges continue only while pairs stay cold": {
			// each shard at 34%: the stream is low, but a merged pair would carry 68%, above a 65% target.
			cfg:    Config{ScaleUpUtilisation: 0.70, TargetUtilisation: 0.65},
			shards: 4, stream: utilMinutes(4, repeat(0.34, 15)...), history: merged(History{}, 2*time.Minute),
			shardMins:  allShards(repeat(0.34, 15)),
			wantAction: ActionNone, wantRule: RuleCooldown, wantTarget: 4,
		},
	})
}

func TestDecideSplitDetails(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	shards := uniformShards(2)
	d := p.Decide(Input{
		Now: now, Shards: shards, Stream: utilMinutes(2, 0.5, 0.5),
		ShardMinutes: map[string][]Minute{shards[1].ID: withThrottle(utilMinutes(1, 1, 1), 0, 9)},
	})
	want := Midpoint(shards[1].StartingHashKey, shards[1].EndingHashKey).String()
	if d.Action != ActionSplitShard || d.ShardID != shards[1].ID || d.NewStartingHashKey != want {
		t.Fatalf("got %+v, want split of %s at %s", d, shards[1].ID, want)
	}
}

func TestDecideMergeDetails(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	shards := uniformShards(3)
	d := p.Decide(Input{
		Now: now, Shards: shards, Stream: utilMinutes(3, repeat(0.4, 15)...),
		ShardMinutes: map[string][]Minute{
			shards[0].ID: utilMinutes(1, repeat(0.8, 15)...),
			shards[1].ID: utilMinutes(1, repeat(0.1, 15)...),
			shards[2].ID: utilMinutes(1, repeat(0.3, 15)...),
		},
	})
	if d.Action != ActionMergeShards || d.ShardID != shards[1].ID || d.AdjacentShardID != shards[2].ID {
		t.Fatalf("got %+v, want merge of %s and %s", d, shards[1].ID, shards[2].ID)
	}
}

func TestHotKeyIsNotChasedForever(t *testing.T) {
	p, err := New(Config{MaxShards: 4})
	if err != nil {
		t.Fatal(err)
	}
	// A shard 1/64 of the key space wide (narrower than 1/(4*MaxShards)) still throttled by one key.
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	narrow := new(big.Int).Div(space, big.NewInt(64))
	shards := []Shard{
		{ID: "narrow", StartingHashKey: big.NewInt(0), EndingHashKey: new(big.Int).Sub(narrow, big.NewInt(1))},
		{ID: "rest", StartingHashKey: narrow, EndingHashKey: new(big.Int).Sub(space, big.NewInt(1))},
	}
	d := p.Decide(Input{
		Now: now, Shards: shards, Stream: withThrottle(utilMinutes(2, 0.55, 0.55), 0, 30),
		ShardMinutes: map[string][]Minute{"narrow": withThrottle(utilMinutes(1, 1, 1), 0, 30), "rest": utilMinutes(1, 0.1, 0.1)},
	})
	if d.Action == ActionSplitShard {
		t.Fatalf("split a shard narrower than the bound: %+v", d)
	}
}

func TestMidpoint(t *testing.T) {
	tests := map[string]struct{ start, end, want string }{
		"whole key space": {"0", "340282366920938463463374607431768211455", "170141183460469231731687303715884105728"},
		"two keys":        {"10", "11", "11"},
		"odd width":       {"0", "2", "1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := new(big.Int).SetString(tc.start, 10)
			e, _ := new(big.Int).SetString(tc.end, 10)
			got := Midpoint(s, e)
			if got.String() != tc.want {
				t.Fatalf("Midpoint(%s, %s) = %s, want %s", tc.start, tc.end, got, tc.want)
			}
			if got.Cmp(s) <= 0 || got.Cmp(e) > 0 {
				t.Fatalf("midpoint %s outside (start, end]", got)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	h := History{}
	for i := range 12 {
		h = h.Record(ActionUpdateShardCount, now.Add(time.Duration(i)*3*time.Hour))
	}
	end := now.Add(33 * time.Hour)
	if got := h.CallsWithin(end); got != 8 {
		t.Errorf("CallsWithin = %d, want 8 calls in the 24 h before the last", got)
	}
	if len(h.UpdateShardCountCalls) != 8 {
		t.Errorf("Record kept %d calls, want the 8 within 24 h", len(h.UpdateShardCountCalls))
	}
	h = h.Record(ActionSplitShard, end.Add(time.Minute))
	if h.CallsWithin(end.Add(time.Minute)) != 8 || h.LastActionKind != ActionSplitShard {
		t.Errorf("split changed the call count or was not recorded: %+v", h)
	}
	h2, changed := h.MarkSettled(end.Add(3 * time.Minute))
	if !changed || !h2.Settled.Equal(end.Add(3*time.Minute)) {
		t.Errorf("MarkSettled did not settle: %+v", h2)
	}
	if _, changed := h2.MarkSettled(end.Add(5 * time.Minute)); changed {
		t.Error("MarkSettled changed an already settled history")
	}
	if _, changed := (History{}).MarkSettled(end); changed {
		t.Error("MarkSettled changed an empty history")
	}
}

func TestNewValidates(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"defaults":                       {Config{}, ""},
		"max below min":                  {Config{MinShards: 5, MaxShards: 3}, "MaxShards is 3"},
		"negative min":                   {Config{MinShards: -1}, "MinShards is -1"},
		"thresholds out of order":        {Config{ScaleDownUtilisation: 0.6, TargetUtilisation: 0.5}, "want 0 < scale-down < target < scale-up"},
		"scale-up above 100%":            {Config{ScaleUpUtilisation: 1.5}, "want 0 < scale-down"},
		"reserve equals limit":           {Config{UpdateShardCountLimit: 3, ScaleUpReserve: 3}, "1 <= reserve < limit"},
		"hold shorter than gaps":         {Config{ScaleDownMinutes: 2, MaxMissingMinutes: 2}, "MaxMissingMinutes is 2"},
		"hot threshold above 1":          {Config{HotShardUtilisation: 1.2}, "HotShardUtilisation"},
		"scarce target above the target": {Config{ScarceCallsTargetUtilisation: 0.72}, "ScarceCallsTargetUtilisation is 0.72"},
		"scarce target below scale-down": {Config{ScarceCallsTargetUtilisation: 0.3}, "ScarceCallsTargetUtilisation is 0.30"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidConfig containing %q", err, tc.wantErr)
			}
		})
	}
}
