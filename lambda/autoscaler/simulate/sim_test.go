package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// tiles reports whether the open shards cover the whole key space without gaps or overlaps.
func tiles(m *StreamModel) bool {
	next := big.NewInt(0)
	for _, s := range m.shards {
		if s.start.Cmp(next) != 0 || s.end.Cmp(s.start) < 0 {
			return false
		}
		next = new(big.Int).Add(s.end, big.NewInt(1))
	}
	return next.Cmp(keySpace) == 0
}

func TestStreamModelLimits(t *testing.T) {
	tests := map[string]struct {
		ops     func(m *StreamModel) error
		wantErr error
	}{
		"more than double":  {func(m *StreamModel) error { return m.UpdateShardCount(0, 9) }, errInvalidArgs},
		"less than half":    {func(m *StreamModel) error { return m.UpdateShardCount(0, 1) }, errInvalidArgs},
		"double is allowed": {func(m *StreamModel) error { return m.UpdateShardCount(0, 8) }, nil},
		"one operation at a time": {func(m *StreamModel) error {
			if err := m.UpdateShardCount(0, 5); err != nil {
				return err
			}
			return m.SplitShard(1, m.shards[0].id, policy.Midpoint(m.shards[0].start, m.shards[0].end))
		}, errResourceInUse},
		"eleventh call in 24 h": {func(m *StreamModel) error {
			for i := range 10 {
				t := i * 60
				m.Tick(t)
				if err := m.UpdateShardCount(t, 4+i%2); err != nil {
					return err
				}
			}
			m.Tick(1000)
			return m.UpdateShardCount(1000, 6)
		}, errLimitExceeded},
		"calls leave the window after 24 h": {func(m *StreamModel) error {
			for i := range 10 {
				t := i * 60
				m.Tick(t)
				if err := m.UpdateShardCount(t, 4+i%2); err != nil {
					return err
				}
			}
			m.Tick(1440)
			return m.UpdateShardCount(1440, 6)
		}, nil},
		"merge of shards that are not adjacent": {func(m *StreamModel) error {
			return m.MergeShards(0, m.shards[0].id, m.shards[2].id)
		}, errInvalidArgs},
		"split outside the shard": {func(m *StreamModel) error {
			return m.SplitShard(0, m.shards[1].id, m.shards[0].start)
		}, errInvalidArgs},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := NewStreamModel(4, 4, 1)
			err := tc.ops(m)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			m.Tick(100_000)
			if !tiles(m) {
				t.Fatal("shards do not tile the key space")
			}
		})
	}
}

func TestStreamModelReshards(t *testing.T) {
	m := NewStreamModel(2, 4, 1)
	if err := m.SplitShard(0, m.shards[1].id, policy.Midpoint(m.shards[1].start, m.shards[1].end)); err != nil {
		t.Fatal(err)
	}
	m.Tick(0)
	if m.OpenShards() != 2 || !m.Updating() {
		t.Fatalf("split applied before its delay: %d shards", m.OpenShards())
	}
	m.Tick(1)
	if m.OpenShards() != 3 || m.Updating() || !tiles(m) {
		t.Fatalf("after split: %d shards, updating %v, tiles %v", m.OpenShards(), m.Updating(), tiles(m))
	}
	if err := m.MergeShards(1, m.shards[1].id, m.shards[2].id); err != nil {
		t.Fatal(err)
	}
	m.Tick(2)
	if m.OpenShards() != 2 || !tiles(m) {
		t.Fatalf("after merge: %d shards, tiles %v", m.OpenShards(), tiles(m))
	}
}

func TestServeThrottlesOnlyTheHotShard(t *testing.T) {
	m := NewStreamModel(4, 4, 1)
	obs := m.Serve(0, Load{Uniform: 2, HotKey: 0.65, HotKeyAt: 0.3}, 2048)
	if !obs.throttled {
		t.Fatal("a shard at 115% was not throttled")
	}
	for _, s := range m.shards {
		mi := obs.shards[s.id]
		hot := s.lo <= 0.3 && 0.3 < s.hi
		if (mi.ThrottledRecords > 0) != hot {
			t.Errorf("shard %s [%.2f,%.2f): throttled %v, want %v", s.id, s.lo, s.hi, mi.ThrottledRecords, hot)
		}
		if mi.IncomingBytes > policy.WriteBytesPerShard*60+1 {
			t.Errorf("shard %s accepted %v bytes, above its limit", s.id, mi.IncomingBytes)
		}
	}
}

func TestOracleShards(t *testing.T) {
	tests := map[string]struct {
		load Load
		c    float64
		want int
	}{
		"exact fit":             {Load{Uniform: 4}, 1, 4},
		"just above":            {Load{Uniform: 4.01}, 1, 5},
		"idle still one shard":  {Load{}, 1, 1},
		"at 70% capacity":       {Load{Uniform: 3.5}, 0.7, 5},
		"hot key gets a shard":  {Load{Uniform: 2, HotKey: 0.65, HotKeyAt: 0.3}, 1, 3},
		"hot key alone":         {Load{HotKey: 0.5}, 1, 1},
		"hot key above a shard": {Load{Uniform: 1, HotKey: 1.5}, 1, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := oracleShards(tc.load, tc.c); got != tc.want {
				t.Fatalf("oracleShards(%+v, %v) = %d, want %d", tc.load, tc.c, got, tc.want)
			}
		})
	}
}

// TestPolicyStaysWithinKinesisLimits replays every trace and checks the invariants the policy promises: Kinesis
// never refuses one of its calls, at most 10 UpdateShardCount calls in any 24 hours, never above MaxShards.
func TestPolicyStaysWithinKinesisLimits(t *testing.T) {
	t.Parallel()
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range Traces() {
		t.Run(tr.Name, func(t *testing.T) {
			row, err := Simulate(tr, p, Settings{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if row.PolicyRefused != 0 {
				t.Errorf("Kinesis refused %d of the policy's calls", row.PolicyRefused)
			}
			if row.Policy.MaxCallsIn24h > 10 || row.ScalingUtils.MaxCallsIn24h > 10 {
				t.Errorf("model allowed %d / %d calls in 24 h", row.Policy.MaxCallsIn24h, row.ScalingUtils.MaxCallsIn24h)
			}
			if row.Policy.MaxShards > 16 {
				t.Errorf("policy reached %d shards, above the maximum", row.Policy.MaxShards)
			}
			if row.Oracle > row.OracleAtScaleUp || row.Oracle <= 0 {
				t.Errorf("oracle %.1f shard-hours should be positive and below the oracle at the scale-up threshold %.1f", row.Oracle, row.OracleAtScaleUp)
			}
		})
	}
}

// BenchmarkSimulate replays all traces; the figures it reports are throttled minutes and shard-hours of this policy
// as ratios against Scaling Utils, the oracle and the rules floor measured in the same run.
func BenchmarkSimulate(b *testing.B) {
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		b.Fatal(err)
	}
	var pol, su, hours, oracle, floor float64
	for b.Loop() {
		pol, su, hours, oracle, floor = 0, 0, 0, 0, 0
		for _, tr := range Traces() {
			row, err := Simulate(tr, p, Settings{}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			pol += float64(row.Policy.ThrottledMinutes)
			su += float64(row.ScalingUtils.ThrottledMinutes)
			hours += row.Policy.ShardHours
			oracle += row.Oracle
			floor += row.RulesFloor
		}
	}
	b.ReportMetric(pol/su, "throttled-min/SU")
	b.ReportMetric(hours/oracle, "shard-hours/oracle")
	b.ReportMetric(hours/floor, "shard-hours/rules-floor")
}

// TestDailyCallLimitAndReserveUnderOscillatingLoad replays two days of a load that swings between 2 and 8 MiB/s every
// two hours, which would take far more than 10 UpdateShardCount calls a day to follow. Counting the policy's own
// accepted calls (not the model's refusals): Kinesis never refuses one, no rolling 24 hours holds more than 10, the
// limit is actually reached, and every call made while only the reserve was left is a scale-up.
func TestDailyCallLimitAndReserveUnderOscillatingLoad(t *testing.T) {
	t.Parallel()
	p, err := policy.New(policy.Config{MaxShards: 16})
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Config()
	tr := Trace{
		Name: "oscillating", Minutes: 48 * 60, RecordSize: 2048, StartShards: 4,
		Load: func(t minuteTime) Load {
			if (t/120)%2 == 1 {
				return Load{Uniform: 8}
			}
			return Load{Uniform: 2}
		},
	}
	var splits, refused int
	pc := &policyController{p: p, splits: &splits, refused: &refused}
	if _, err := Run(tr, pc, Settings{}); err != nil {
		t.Fatal(err)
	}
	if refused != 0 {
		t.Errorf("Kinesis refused %d of the policy's calls", refused)
	}
	most := 0
	for i, c := range pc.calls {
		before := 0 // accepted calls in the 24 hours before this one
		for _, o := range pc.calls[:i] {
			if o.minute > c.minute-24*60 {
				before++
			}
		}
		most = max(most, before+1)
		if before >= cfg.UpdateShardCountLimit {
			t.Errorf("call %d at minute %d is call %d within 24 h", i, c.minute, before+1)
		}
		if before >= cfg.UpdateShardCountLimit-cfg.ScaleUpReserve && c.to < c.from {
			t.Errorf("scale-down %d -> %d at minute %d used the reserve (%d calls in the 24 h before)", c.from, c.to, c.minute, before)
		}
	}
	t.Logf("%d calls, at most %d in 24 h, %d splits+merges", len(pc.calls), most, splits)
	if most < cfg.UpdateShardCountLimit-1 {
		t.Errorf("at most %d calls in any 24 h: the trace does not reach the limit, so it tests nothing (%d calls in all)", most, len(pc.calls))
	}
}

// TestRunPrintsTheSimulatedFigures checks that each trace's lines of the printed tables carry the figures Simulate
// computes for it, in the order of the headers, and that every trace is in the four tables.
func TestRunPrintsTheSimulatedFigures(t *testing.T) {
	t.Parallel()
	p, err := policy.New(policy.Config{MinShards: 1, MaxShards: 16})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	set := Settings{Readers: Readers{FanOut: 1}}
	if err := run(&out, set, policy.Config{MinShards: 1, MaxShards: 16}, outputs{seeds: 1}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "across seeds 1..1") {
		t.Errorf("no summary across seeds:\n%s", out.String())
	}
	lines := strings.Split(out.String(), "\n")
	for _, tr := range Traces() {
		r, err := Simulate(tr, p, set, nil)
		if err != nil {
			t.Fatal(err)
		}
		figures := fmt.Sprintf("%s %d %d %.1f %.1f %.1f %.1f %.1f %d (%d) %d (%d) (%d) %d", tr.Name,
			r.Policy.ThrottledMinutes, r.ScalingUtils.ThrottledMinutes, r.Policy.ShardHours, r.ScalingUtils.ShardHours,
			r.Oracle, r.OracleAtScaleUp, r.RulesFloor, r.Policy.UpdateCalls, r.Policy.MaxCallsIn24h, r.ScalingUtils.UpdateCalls,
			r.ScalingUtils.MaxCallsIn24h, r.SURefused, r.Policy.SplitsMerges)
		o := optionsByName(r.Options)
		costs := fmt.Sprintf("%s %.0f %d %.1f %.2f %d %d %.1f %.2f %d %d %.2f %d %.2f %s", tr.Name, r.Hours,
			r.Policy.ThrottledMinutes, r.Policy.ShardHours, o[OptionAutoscaler].Dollars, r.Policy.UpdateCalls,
			r.ScalingUtils.ThrottledMinutes, r.ScalingUtils.ShardHours, o[OptionScalingUtils].Dollars, r.ScalingUtils.UpdateCalls,
			r.FixedPeakShards, o[OptionFixedPeak].Dollars, o[OptionOnDemand].ThrottledMinutes, o[OptionOnDemand].Dollars, cmp.Or(r.Cheapest, "none"))
		for _, want := range []string{figures, costs} {
			found := false
			for _, l := range lines {
				found = found || strings.Join(strings.Fields(l), " ") == want
			}
			if !found {
				t.Errorf("no table line %q in:\n%s", want, out.String())
			}
		}
		if strings.Count(out.String(), tr.Name) != 4 {
			t.Errorf("trace %q not in all four tables", tr.Name)
		}
	}
}

// TestRunFollowsThePolicyThresholds checks that other thresholds reach the policy, the oracle at the scale-up
// threshold and the rules floor: a 50 % policy never throttles on the 2x step, which the default one does.
func TestRunFollowsThePolicyThresholds(t *testing.T) {
	t.Parallel()
	cfg := policy.Config{MinShards: 1, MaxShards: 16, ScaleUpUtilisation: 0.5, TargetUtilisation: 0.45, ScaleDownUtilisation: 0.25}
	var out strings.Builder
	if err := run(&out, Settings{}, cfg, outputs{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "oracle@50%") || !strings.Contains(out.String(), "above 50%") {
		t.Errorf("the tables do not name the 50%% threshold:\n%s", out.String())
	}
	p, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	row, err := Simulate(Traces()[0], p, Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if row.Policy.ThrottledMinutes != 0 || row.RulesFloor <= row.Oracle*1.9 {
		t.Errorf("2x step at 50 %%: %d throttled minutes, rules floor %.1f against oracle %.1f", row.Policy.ThrottledMinutes, row.RulesFloor, row.Oracle)
	}
}
