package policy

import (
	"math/big"
	"testing"
	"time"
)

// FuzzDecideStaysWithinKinesisLimits feeds the policy arbitrary loads, shard counts, bounds and histories and checks
// the promises every decision keeps whatever the input: UpdateShardCount within [n/2, 2n] and the min/max bounds,
// never past the daily limit, scale-downs never into the reserve, splits of a hot shard at its midpoint and of a
// carved one inside its range below MaxShards, merges of adjacent shards above MinShards, and a reason.
func FuzzDecideStaysWithinKinesisLimits(f *testing.F) {
	f.Add(uint8(4), uint8(1), uint8(16), uint8(0), uint8(0), false, []byte{200, 200, 200})
	f.Add(uint8(8), uint8(1), uint8(16), uint8(7), uint8(20), true, []byte{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10})
	f.Add(uint8(3), uint8(4), uint8(8), uint8(10), uint8(60), true, []byte{255, 0, 255})
	f.Add(uint8(20), uint8(2), uint8(6), uint8(5), uint8(3), false, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, n, minS, maxS, used, lastAgo uint8, shardLevel bool, loads []byte) {
		// GIVEN a policy with fuzzed bounds and a stream with fuzzed shards, loads and history
		p, err := New(Config{MinShards: int(minS%20) + 1, MaxShards: int(maxS%40) + 1})
		if err != nil {
			return // min above max: New refuses it
		}
		in := fuzzInput(int(n%40)+1, fuzzHistory(used, lastAgo), shardLevel, loads)
		// WHEN it decides
		d := p.Decide(in)
		// THEN the decision keeps every promise of its action
		checkDecision(t, p.Config(), in, d)
	})
}

// fuzzHistory is a history of used%13 UpdateShardCount calls an hour apart and, when lastAgo > 0, a last action
// lastAgo minutes back (its kind and settling time drawn from lastAgo).
func fuzzHistory(used, lastAgo uint8) History {
	h := History{}
	for i := range int(used % 13) {
		h = h.Record(ActionUpdateShardCount, now.Add(-time.Duration(23-i)*time.Hour))
	}
	if lastAgo > 0 {
		h = h.Record(Action([]Action{ActionUpdateShardCount, ActionSplitShard, ActionMergeShards}[lastAgo%3]), now.Add(-time.Duration(lastAgo)*time.Minute))
		h.Settled = h.LastAction.Add(time.Duration(lastAgo%4) * time.Minute)
	}
	return h
}

// fuzzInput is count uniform shards carrying loads (see fuzzMinutes) with history h; with shardLevel each shard
// gets its own minutes, a different load per shard.
func fuzzInput(count int, h History, shardLevel bool, loads []byte) Input {
	shards := uniformShards(count)
	in := Input{Now: now, Shards: shards, Stream: fuzzMinutes(count, loads), History: h}
	if shardLevel {
		in.ShardMinutes = map[string][]Minute{}
		for i, sh := range shards {
			bs := make([]byte, len(loads))
			for j, b := range loads {
				bs[j] = b ^ byte(i*37) // each shard a different load
			}
			in.ShardMinutes[sh.ID] = fuzzMinutes(1, bs)
		}
	}
	return in
}

// fuzzMinutes turns each byte into one minute (newest last) of shardsCarrying shards: 255 is a missing datapoint,
// else utilisation up to 127 % with throttling above 100 %.
func fuzzMinutes(shardsCarrying int, bs []byte) []Minute {
	var out []Minute
	for i, b := range bs {
		if b == 255 {
			continue
		}
		u := float64(b) / 200
		m := Minute{Start: minuteAt(len(bs) - 1 - i), WriteKnown: true, IncomingBytes: min(u, 1) * float64(shardsCarrying) * WriteBytesPerShard * 60, IncomingRecords: 100}
		if u > 1 {
			m.ThrottledRecords = (u - 1) * 1000
		}
		out = append(out, m)
	}
	return out
}

// checkDecision fails t unless d has a reason and the input's counts, and keeps the promises of its action.
func checkDecision(t *testing.T, cfg Config, in Input, d Decision) {
	t.Helper()
	count, callsUsed := len(in.Shards), in.History.CallsWithin(in.Now)
	if d.Reason == "" || d.CurrentShardCount != count || d.UpdateCallsUsed != callsUsed {
		t.Fatalf("decision %+v: empty reason or wrong counts (n=%d, used=%d)", d, count, callsUsed)
	}
	switch d.Action {
	case ActionNone:
		if d.TargetShardCount != count {
			t.Fatalf("no action but target %d != %d", d.TargetShardCount, count)
		}
	case ActionUpdateShardCount:
		checkUpdateShardCount(t, cfg, count, callsUsed, d.TargetShardCount)
	case ActionSplitShard:
		checkSplit(t, cfg, in.Shards, d)
	case ActionMergeShards:
		checkMerge(t, cfg, in.Shards, d)
	default:
		t.Fatalf("unknown action %q", d.Action)
	}
}

// checkUpdateShardCount fails t unless a resize of count shards to tgt, with callsUsed calls in 24 hours, changes
// the count within [n/2, 2n], has a call left, keeps the reserve when scaling down and stays within the bounds
// (when it starts within them).
func checkUpdateShardCount(t *testing.T, cfg Config, count, callsUsed, tgt int) {
	t.Helper()
	if tgt == count || tgt > 2*count || 2*tgt < count {
		t.Fatalf("target %d outside [n/2, 2n] or unchanged for n=%d", tgt, count)
	}
	if callsUsed >= cfg.UpdateShardCountLimit {
		t.Fatalf("UpdateShardCount with %d calls used of %d", callsUsed, cfg.UpdateShardCountLimit)
	}
	if tgt < count && callsUsed >= cfg.UpdateShardCountLimit-cfg.ScaleUpReserve {
		t.Fatalf("scale-down %d -> %d used the reserve (%d calls used)", count, tgt, callsUsed)
	}
	if tgt > count && tgt > max(cfg.MaxShards, 0) && count >= cfg.MinShards {
		t.Fatalf("scale-up %d -> %d above MaxShards %d", count, tgt, cfg.MaxShards)
	}
	if tgt < count && tgt < cfg.MinShards && count <= cfg.MaxShards {
		t.Fatalf("scale-down %d -> %d below MinShards %d", count, tgt, cfg.MinShards)
	}
}

// checkSplit fails t unless split d happens below MaxShards, adds one shard, and splits an open shard: a hot one at
// its midpoint, a carved one inside its range, at least minCarve of it from either end.
func checkSplit(t *testing.T, cfg Config, shards []Shard, d Decision) {
	t.Helper()
	count := len(shards)
	if count >= cfg.MaxShards || d.TargetShardCount != count+1 {
		t.Fatalf("split at %d shards (max %d), target %d", count, cfg.MaxShards, d.TargetShardCount)
	}
	sh := shardByID(shards, d.ShardID)
	if sh == nil {
		t.Fatalf("split of %s: not an open shard", d.ShardID)
	}
	switch d.Rule {
	case RuleHotShard:
		if d.NewStartingHashKey != Midpoint(sh.StartingHashKey, sh.EndingHashKey).String() {
			t.Fatalf("hot split of %s at %s: not its midpoint", d.ShardID, d.NewStartingHashKey)
		}
	case RuleCarve:
		if cut := shareOf(*sh, d.NewStartingHashKey); cut < minCarve-1e-9 || cut > 1-minCarve+1e-9 {
			t.Fatalf("carve of %s at %.4f of its range, want within [%.2f, %.2f]", d.ShardID, cut, minCarve, 1-minCarve)
		}
	default:
		t.Fatalf("split by rule %s", d.Rule)
	}
}

// checkMerge fails t unless merge d happens above MinShards, removes one shard, and merges two adjacent open
// shards.
func checkMerge(t *testing.T, cfg Config, shards []Shard, d Decision) {
	t.Helper()
	count := len(shards)
	if count <= cfg.MinShards || d.TargetShardCount != count-1 {
		t.Fatalf("merge at %d shards (min %d), target %d", count, cfg.MinShards, d.TargetShardCount)
	}
	a, b := shardByID(shards, d.ShardID), shardByID(shards, d.AdjacentShardID)
	if a == nil || b == nil || new(big.Int).Add(a.EndingHashKey, big.NewInt(1)).Cmp(b.StartingHashKey) != 0 {
		t.Fatalf("merge of %s and %s: not adjacent open shards", d.ShardID, d.AdjacentShardID)
	}
}

// shardByID is the shard of shards with the given ID, nil when there is none.
func shardByID(shards []Shard, id string) *Shard {
	for i := range shards {
		if shards[i].ID == id {
			return &shards[i]
		}
	}
	return nil
}
