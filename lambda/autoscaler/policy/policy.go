// Package policy decides how many shards a Kinesis data stream should have, and which hot shard to split or cold
// pair to merge, from per-minute CloudWatch sums and the autoscaler's own action history. It is pure Go with no AWS
// calls, so every rule is table-tested and the same code runs in the Lambda and in the simulation.
//
// Rules, first match wins:
//  1. Below MinShards or above MaxShards: move towards the bound (UpdateShardCount).
//  2. No known write datapoint within MaxDataAge: do nothing (missing data is unknown load, never zero load).
//  3. Scale up at once when utilisation is above ScaleUpUtilisation for ScaleUpMinutes consecutive minutes, or when
//     any write was throttled, both counted only on minutes after the last action settled, unless shard-level
//     metrics show the throttling comes from one hot shard while the stream as a whole is below the threshold (then
//     rule 4); or when a rising load, predicted over the lead time (the newest datapoint's age and ReshardDuration),
//     would be above ScaleUpUtilisation before a resize decided at the next run could land.
//     The new count is sized for the load predicted GrowthHorizon beyond the lead time at TargetUtilisation, or
//     ScarceCallsTargetUtilisation when the call would leave fewer than ScaleUpReserve.
//  4. Hot shard: a shard above HotShardUtilisation (or throttled) while the stream is not: SplitShard at the
//     midpoint of its hash range.
//  5. Scale down after ScaleDownMinutes known minutes below ScaleDownUtilisation, ScaleDownCooldown after the last
//     action (unless that was a scale-down, which this one continues), and only while more than ScaleUpReserve
//     UpdateShardCount calls remain in the rolling 24 hours.
//  6. Merge two adjacent shards (shard-level metrics) whose combined load stayed below the merge limit (halfway
//     from TargetUtilisation to ScaleUpUtilisation) for the hold window while the stream fits in one shard fewer at
//     TargetUtilisation, the pair that fills one shard best; never the two halves of one split. Merges cost no
//     UpdateShardCount call; a merge that follows a merge or split continues the same reshaping and is not held by
//     the cool-down (each pair must still fit for the whole hold window; a shard new from a split or merge borrows
//     its parents' minutes from before it existed).
//  7. Carve: when three adjacent shards carry together less than two shards' worth at the merge limit but no two of
//     them fit in one (a hot key's split leaves such a cold half), split the middle one at the point its load
//     divides to fill each outer one to half the three's load; rule 6 then merges the pieces into their neighbours.
//
// Utilisation of a minute is the largest of four ratios against the open shards' capacity: written bytes against
// 1 MiB/s per shard, written records against 1000/s per shard, GetRecords bytes (shared by every polling consumer)
// against 2 MiB/s per shard, and the busiest enhanced fan-out consumer's SubscribeToShardEvent bytes against 2 MiB/s
// per shard (each fan-out consumer has its own 2 MiB/s per shard, so their sum limits nothing).
package policy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"
)

// Per-shard capacity of a provisioned Kinesis data stream.
const (
	// WriteBytesPerShard is the write limit of one shard in bytes per second.
	WriteBytesPerShard = 1 << 20
	// WriteRecordsPerShard is the write limit of one shard in records per second.
	WriteRecordsPerShard = 1000
	// ReadBytesPerShard is the read limit of one shard in bytes per second, shared by all GetRecords consumers and
	// given separately to each enhanced fan-out consumer.
	ReadBytesPerShard = 2 << 20
)

// Action is a resharding operation the policy asks for.
type Action string

// Actions.
const (
	// ActionNone keeps the stream as it is.
	ActionNone Action = "none"
	// ActionUpdateShardCount resizes the stream uniformly (limited to 10 calls per rolling 24 hours).
	ActionUpdateShardCount Action = "UpdateShardCount"
	// ActionSplitShard splits one shard at its hash-range midpoint.
	ActionSplitShard Action = "SplitShard"
	// ActionMergeShards merges two adjacent shards.
	ActionMergeShards Action = "MergeShards"
)

// Rule names a rule of the policy; it is logged with every decision so they can be counted.
type Rule string

// Rules.
const (
	RuleNoShards      Rule = "no_open_shards"
	RuleBelowMin      Rule = "below_min_shards"
	RuleAboveMax      Rule = "above_max_shards"
	RuleNoData        Rule = "no_recent_data"
	RuleScaleUp       Rule = "scale_up_utilisation"
	RuleThrottled     Rule = "scale_up_throttled"
	RuleScaleUpTrend  Rule = "scale_up_trend"
	RuleAtMax         Rule = "at_max_shards"
	RuleCallLimit     Rule = "update_limit_reached"
	RuleHotShard      Rule = "hot_shard_split"
	RuleScaleDown     Rule = "scale_down"
	RuleCooldown      Rule = "cooldown"
	RuleReserve       Rule = "scale_down_reserve"
	RuleNotEnoughData Rule = "scale_down_not_enough_data"
	RuleMergeShards   Rule = "merge_shards"
	RuleCarve         Rule = "carve_split"
	RuleSteady        Rule = "steady"
)

// Config tunes the policy. The zero value of every field means its documented default.
type Config struct {
	// MinShards is the fewest open shards. Default: 1.
	MinShards int
	// MaxShards is the most open shards. Default: 16 (the blog's Scaling Utils maximum).
	MaxShards int
	// ScaleUpUtilisation triggers a scale-up when exceeded for ScaleUpMinutes consecutive minutes. Default: 0.75, the
	// blog's Scaling Utils threshold: at 0.70 a stream pays for a tenth more shards than at 0.75 in steady state, and
	// the simulation showed Scaling Utils spending fewer shard-hours than a 0.70 policy while throttling fewer
	// minutes on a load step (see lambda/autoscaler/simulate).
	ScaleUpUtilisation float64
	// ScaleUpMinutes is how many consecutive known minutes must be above ScaleUpUtilisation. Default: 2.
	ScaleUpMinutes int
	// TargetUtilisation is what a new shard count is sized for, in both directions, and the most two merged shards
	// may carry together. It sits just below ScaleUpUtilisation: a policy that must scale up at 75 % cannot run its
	// steady state above 75 %, so every point below that is paid in shard-hours, while the gap to the threshold is
	// the hysteresis (the load must grow by 75/70 - 1 = 7 % before a resized stream scales up again) and the gap to
	// ScaleDownUtilisation keeps a scale-down from being followed by the opposite action. Default: 0.70.
	TargetUtilisation float64
	// ScarceCallsTargetUtilisation replaces TargetUtilisation for a scale-up that leaves fewer than ScaleUpReserve
	// UpdateShardCount calls in the rolling 24 hours: while calls are scarce each one buys more headroom, so a
	// rising load does not run out of calls before it runs out of growth. Default: 0.50, or TargetUtilisation when
	// that is lower.
	ScarceCallsTargetUtilisation float64
	// ScaleDownUtilisation must not be reached by any known minute of the hold window for a scale-down.
	// Default: 0.35.
	ScaleDownUtilisation float64
	// ScaleDownMinutes is the hold window: how long load must stay low before a scale-down or merge. Default: 15.
	ScaleDownMinutes int
	// ScaleDownCooldown is the least time between any action and a scale-down or merge, except between two merges
	// (one scale-down carried out a pair at a time). Default: 15 minutes.
	ScaleDownCooldown time.Duration
	// MaxMissingMinutes is how many minutes of the hold window may lack datapoints. Default: 2.
	MaxMissingMinutes int
	// MaxDataAge is how old the newest known minute may be for the policy to act on utilisation. Default: 5 minutes.
	MaxDataAge time.Duration
	// GrowthHorizon is how far beyond the lead time a scale-up extrapolates a rising load, so that a ramp costs few
	// calls. Default: 10 minutes.
	GrowthHorizon time.Duration
	// ReshardDuration is how long an UpdateShardCount takes before the new shards carry writes. With the age of the
	// newest datapoint it is the lead time: how far ahead a scale-up must predict the load (rule 3). Kinesis takes
	// seconds to minutes, more for more shards. Default: 4 minutes.
	ReshardDuration time.Duration
	// UpdateShardCountLimit is how many UpdateShardCount calls Kinesis allows per rolling 24 hours. Default: 10.
	UpdateShardCountLimit int
	// ScaleUpReserve is how many of those calls scale-downs never use, so a scale-up is always possible.
	// Default: 3. Must be at least 1 and below UpdateShardCountLimit.
	ScaleUpReserve int
	// HotShardUtilisation marks a single shard as hot (split candidate) when exceeded for ScaleUpMinutes minutes.
	// Default: 0.90.
	HotShardUtilisation float64
}

// ErrInvalidConfig is wrapped by New's errors.
var ErrInvalidConfig = errors.New("invalid autoscaler policy config")

// Policy is a validated Config. It holds no state; the state is the History passed in.
type Policy struct {
	cfg Config
}

// New fills in defaults and validates cfg.
func New(cfg Config) (*Policy, error) {
	cfg.MinShards = cmp.Or(cfg.MinShards, 1)
	cfg.MaxShards = cmp.Or(cfg.MaxShards, 16)
	cfg.ScaleUpUtilisation = cmp.Or(cfg.ScaleUpUtilisation, 0.75)
	cfg.ScaleUpMinutes = cmp.Or(cfg.ScaleUpMinutes, 2)
	cfg.TargetUtilisation = cmp.Or(cfg.TargetUtilisation, 0.70)
	cfg.ScaleDownUtilisation = cmp.Or(cfg.ScaleDownUtilisation, 0.35)
	// After TargetUtilisation: its default follows the target's.
	cfg.ScarceCallsTargetUtilisation = cmp.Or(cfg.ScarceCallsTargetUtilisation, min(0.50, cfg.TargetUtilisation))
	cfg.ScaleDownMinutes = cmp.Or(cfg.ScaleDownMinutes, 15)
	cfg.ScaleDownCooldown = cmp.Or(cfg.ScaleDownCooldown, 15*time.Minute)
	cfg.MaxMissingMinutes = cmp.Or(cfg.MaxMissingMinutes, 2)
	cfg.MaxDataAge = cmp.Or(cfg.MaxDataAge, 5*time.Minute)
	cfg.GrowthHorizon = cmp.Or(cfg.GrowthHorizon, 10*time.Minute)
	cfg.ReshardDuration = cmp.Or(cfg.ReshardDuration, 4*time.Minute)
	cfg.UpdateShardCountLimit = cmp.Or(cfg.UpdateShardCountLimit, 10)
	cfg.ScaleUpReserve = cmp.Or(cfg.ScaleUpReserve, 3)
	cfg.HotShardUtilisation = cmp.Or(cfg.HotShardUtilisation, 0.90)

	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.MinShards < 1 {
		bad("MinShards is %d, want at least 1", cfg.MinShards)
	}
	if cfg.MaxShards < cfg.MinShards {
		bad("MaxShards is %d, want at least MinShards (%d)", cfg.MaxShards, cfg.MinShards)
	}
	if !(cfg.ScaleDownUtilisation > 0 && cfg.ScaleDownUtilisation < cfg.TargetUtilisation &&
		cfg.TargetUtilisation < cfg.ScaleUpUtilisation && cfg.ScaleUpUtilisation <= 1) {
		bad("utilisations are scale-down %.2f, target %.2f, scale-up %.2f; want 0 < scale-down < target < scale-up <= 1",
			cfg.ScaleDownUtilisation, cfg.TargetUtilisation, cfg.ScaleUpUtilisation)
	}
	if cfg.ScarceCallsTargetUtilisation <= cfg.ScaleDownUtilisation || cfg.ScarceCallsTargetUtilisation > cfg.TargetUtilisation {
		bad("ScarceCallsTargetUtilisation is %.2f, want above scale-down %.2f and at most target %.2f",
			cfg.ScarceCallsTargetUtilisation, cfg.ScaleDownUtilisation, cfg.TargetUtilisation)
	}
	if cfg.HotShardUtilisation <= 0 || cfg.HotShardUtilisation > 1 {
		bad("HotShardUtilisation is %.2f, want in (0, 1]", cfg.HotShardUtilisation)
	}
	if cfg.ScaleUpMinutes < 1 || cfg.ScaleDownMinutes < 1 {
		bad("ScaleUpMinutes %d and ScaleDownMinutes %d must be at least 1", cfg.ScaleUpMinutes, cfg.ScaleDownMinutes)
	}
	if cfg.MaxMissingMinutes < 0 || cfg.MaxMissingMinutes >= cfg.ScaleDownMinutes {
		bad("MaxMissingMinutes is %d, want 0 to ScaleDownMinutes-1 (%d)", cfg.MaxMissingMinutes, cfg.ScaleDownMinutes-1)
	}
	if cfg.ScaleDownCooldown < 0 || cfg.MaxDataAge < time.Minute || cfg.GrowthHorizon < 0 || cfg.ReshardDuration < 0 {
		bad("ScaleDownCooldown %v, MaxDataAge %v, GrowthHorizon %v, ReshardDuration %v: want cooldown >= 0, data age >= 1m, horizon and reshard duration >= 0",
			cfg.ScaleDownCooldown, cfg.MaxDataAge, cfg.GrowthHorizon, cfg.ReshardDuration)
	}
	if cfg.UpdateShardCountLimit < 2 || cfg.ScaleUpReserve < 1 || cfg.ScaleUpReserve >= cfg.UpdateShardCountLimit {
		bad("UpdateShardCountLimit %d and ScaleUpReserve %d: want limit >= 2 and 1 <= reserve < limit",
			cfg.UpdateShardCountLimit, cfg.ScaleUpReserve)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return &Policy{cfg: cfg}, nil
}

// Config returns the configuration with defaults filled in.
func (p *Policy) Config() Config { return p.cfg }

// Minute holds one minute of CloudWatch sums (statistic Sum, period 60 s) for the stream or for one shard.
type Minute struct {
	// Start is the start of the minute.
	Start time.Time
	// WriteKnown is true when IncomingBytes and IncomingRecords both had a datapoint. A minute without them is
	// unknown: it neither proves low load nor high load.
	WriteKnown bool
	// IncomingBytes is the sum of bytes written successfully.
	IncomingBytes float64
	// IncomingRecords is the sum of records written successfully.
	IncomingRecords float64
	// ThrottledRecords is WriteProvisionedThroughputExceeded (records rejected); 0 when it had no datapoint.
	ThrottledRecords float64
	// GetRecordsBytes is GetRecords.Bytes, shared by all polling consumers; 0 when it had no datapoint.
	GetRecordsBytes float64
	// FanOutBytes is the largest SubscribeToShardEvent.Bytes of any single enhanced fan-out consumer.
	FanOutBytes float64
}

// Shard is an open shard and its hash-key range (inclusive).
type Shard struct {
	// ID is the shard's ID, as in ListShards.
	ID string
	// StartingHashKey is the lowest hash key the shard owns.
	StartingHashKey *big.Int
	// EndingHashKey is the highest hash key the shard owns.
	EndingHashKey *big.Int
	// ParentShardID is the shard this one was split from, or the first of the two it was merged from; "" for a
	// shard the stream was created with.
	ParentShardID string
	// AdjacentParentShardID is the second of the two shards this one was merged from; "" otherwise.
	AdjacentParentShardID string
}

// Input is everything one decision is made from.
type Input struct {
	// Now is the decision time.
	Now time.Time
	// Shards are the open shards of the stream.
	Shards []Shard
	// Stream are the stream-level minutes; order does not matter, minutes without any datapoint may be absent.
	Stream []Minute
	// ShardMinutes are shard-level write minutes keyed by shard ID, of the open shards and of ClosedShards; nil when
	// shard-level metrics are off.
	ShardMinutes map[string][]Minute
	// ClosedShards are closed parents of open shards, with their hash ranges: with their minutes, a shard new from a
	// split or merge has a history from before it existed. May be empty.
	ClosedShards []Shard
	// History is the autoscaler's record of its own actions.
	History History
}

// Decision is the policy's answer: an action (possibly none) and why.
type Decision struct {
	// Action is the resharding operation to run; ActionNone leaves the stream as it is.
	Action Action `json:"action"`
	// Rule is the rule of the policy that decided.
	Rule Rule `json:"rule"`
	// Reason says in words why, with the figures that decided it.
	Reason string `json:"reason"`
	// CurrentShardCount is the number of open shards now.
	CurrentShardCount int `json:"current_shard_count"`
	// TargetShardCount is the number of open shards once the action completes.
	TargetShardCount int `json:"target_shard_count"`
	// ShardID is the shard to split, or the first of the two to merge.
	ShardID string `json:"shard_id,omitempty"`
	// AdjacentShardID is the second shard to merge.
	AdjacentShardID string `json:"adjacent_shard_id,omitempty"`
	// NewStartingHashKey is the split point (decimal), the midpoint of the shard's range.
	NewStartingHashKey string `json:"new_starting_hash_key,omitempty"`
	// Utilisation is the newest known minute's utilisation of the open shards (0 when unknown).
	Utilisation float64 `json:"utilisation"`
	// UpdateCallsUsed is the number of UpdateShardCount calls in the rolling 24 hours before this decision.
	UpdateCallsUsed int `json:"update_calls_used"`
}

// load is one minute expressed in shard-equivalents: how many fully used shards it needs.
func load(m Minute) float64 {
	if !m.WriteKnown {
		return math.NaN()
	}
	records := m.IncomingRecords + m.ThrottledRecords
	bytes := m.IncomingBytes
	if m.ThrottledRecords > 0 && m.IncomingRecords > 0 {
		// IncomingBytes counts only accepted records; estimate the demand at the accepted mean record size.
		bytes *= records / m.IncomingRecords
	}
	return max(
		bytes/(WriteBytesPerShard*60),
		records/(WriteRecordsPerShard*60),
		m.GetRecordsBytes/(ReadBytesPerShard*60),
		m.FanOutBytes/(ReadBytesPerShard*60),
	)
}

// series is the known minutes of a metric set, sorted by start.
type series []Minute

func known(ms []Minute) series {
	out := make(series, 0, len(ms))
	for _, m := range ms {
		if m.WriteKnown {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Minute) int { return a.Start.Compare(b.Start) })
	return slices.CompactFunc(out, func(a, b Minute) bool { return a.Start.Equal(b.Start) })
}

// lastConsecutive returns the newest k minutes if they are consecutive, else nil.
func (s series) lastConsecutive(k int) series {
	if len(s) < k {
		return nil
	}
	tail := s[len(s)-k:]
	for i := 1; i < len(tail); i++ {
		if tail[i].Start.Sub(tail[i-1].Start) != time.Minute {
			return nil
		}
	}
	return tail
}

// lowestLoad is the lowest load of the minutes of s; s must not be empty.
func (s series) lowestLoad() float64 {
	low := math.Inf(1)
	for _, m := range s {
		low = min(low, load(m))
	}
	return low
}

// peakLoad is the highest load of the minutes of s, 0 when s is empty.
func (s series) peakLoad() float64 {
	peak := 0.0
	for _, m := range s {
		peak = max(peak, load(m))
	}
	return peak
}

// throttledSince reports the largest throttled record count in minutes starting at or after since.
func (s series) throttledSince(since time.Time) float64 {
	var worst float64
	for _, m := range s {
		if !m.Start.Before(since) {
			worst = max(worst, m.ThrottledRecords)
		}
	}
	return worst
}

// window returns the minutes of the hold window ending at the newest known minute, and how many minutes of it
// had no datapoint. Gaps may lie inside the window, but data must reach back to its start: a window that begins
// before the first known minute counts as all missing (its known minutes are still returned), so the hold time is
// never shortened.
func (s series) window(minutes int) (series, int) {
	if len(s) == 0 {
		return nil, minutes
	}
	from := s[len(s)-1].Start.Add(-time.Duration(minutes-1) * time.Minute)
	i, found := slices.BinarySearchFunc(s, from, func(m Minute, t time.Time) int { return m.Start.Compare(t) })
	if !found && i == 0 {
		return s, minutes
	}
	w := s[i:]
	return w, minutes - len(w)
}

// Decide applies the rules of the package doc to in, in that order; the first that applies decides, and when none
// does the stream is steady. It never fails: bad or missing input gives ActionNone with the reason.
//
// Each rule is one function that returns nil when it does not apply. The load a scale-up is sized for is
// projectedLoad's estimate, and where a hot shard is split is splitPoint's choice.
func (p *Policy) Decide(in Input) Decision {
	s := p.newSituation(in)
	if d := p.moveIntoBounds(s); d != nil { // rule 1
		return *d
	}
	if d := p.holdWithoutData(s); d != nil { // rule 2
		return *d
	}
	// From here on the newest known minute is recent, so the rules act on the measured load.
	p.measureLoad(s)
	if d := p.scaleUp(s); d != nil { // rule 3
		return *d
	}
	if d := p.splitHotShard(s); d != nil { // rule 4
		return *d
	}
	if d := p.scaleDown(s); d != nil { // rule 5
		return *d
	}
	if d := p.mergeNeighbours(s); d != nil { // rule 6
		return *d
	}
	if d := p.carve(s); d != nil { // rule 7
		return *d
	}
	return p.steady(s)
}

// situation is what the rules read, worked out once per decision.
type situation struct {
	// in is the input being decided on.
	in Input
	// n is the number of open shards.
	n int
	// used is the number of UpdateShardCount calls in the rolling 24 hours before now.
	used int
	// stream is the known stream-level minutes, oldest first.
	stream series

	// The fields below are set by measureLoad, once rule 2 has found a recent minute; until then they are zero.

	// utilisation is the newest known minute's load over the open shards.
	utilisation float64
	// layoutSince is the first minute measured on the current shard layout: minutes before the last action settled
	// show the old layout's pressure.
	layoutSince time.Time
	// throttleSince is where the throttle window starts: layoutSince, but no earlier than MaxDataAge ago.
	throttleSince time.Time
	// hot is the shard rule 4 splits, nil when none is hot; hotReason says why it is hot.
	hot       *Shard
	hotReason string
	// hold is the stream's load over the scale-down hold window.
	hold holdWindow
	// windows are the open shards' hold windows (see windowsOf), once windowsDone.
	windows     []shardWindow
	windowsDone bool
}

// newSituation works out what every rule reads; the load is measured later, by measureLoad.
func (p *Policy) newSituation(in Input) *situation {
	return &situation{in: in, n: len(in.Shards), used: in.History.CallsWithin(in.Now), stream: known(in.Stream)}
}

// measureLoad sets the fields of s the rules from rule 3 on read. The stream must have a known minute.
func (p *Policy) measureLoad(s *situation) {
	s.utilisation = load(s.stream[len(s.stream)-1]) / float64(s.n)
	s.layoutSince = s.in.History.throttleSince(s.in.Now)
	s.throttleSince = s.layoutSince
	if recent := s.in.Now.Add(-p.cfg.MaxDataAge); s.throttleSince.Before(recent) {
		s.throttleSince = recent
	}
	s.hot, s.hotReason = p.hotShard(s.in, s.throttleSince)
	s.hold = p.holdWindow(s)
}

// decision is the decision every rule starts from: no action, the shard and call counts, and the utilisation (0
// while it is not measured).
func (s *situation) decision() Decision {
	return Decision{
		Action: ActionNone, CurrentShardCount: s.n, TargetShardCount: s.n,
		Utilisation: s.utilisation, UpdateCallsUsed: s.used,
	}
}

// none is a decision to leave the stream as it is, for the given rule and reason.
func (s *situation) none(rule Rule, format string, args ...any) *Decision {
	d := s.decision()
	d.Rule, d.Reason = rule, fmt.Sprintf(format, args...)
	return &d
}

// update is a decision to resize the stream to target shards with UpdateShardCount.
func (s *situation) update(rule Rule, target int, format string, args ...any) *Decision {
	d := s.decision()
	d.Action, d.Rule, d.TargetShardCount = ActionUpdateShardCount, rule, target
	d.Reason = fmt.Sprintf(format, args...)
	return &d
}

// coolingDown reports whether the last action of any kind is less than ScaleDownCooldown ago.
func (p *Policy) coolingDown(s *situation) bool {
	h := s.in.History
	return !h.LastAction.IsZero() && s.in.Now.Sub(h.LastAction) < p.cfg.ScaleDownCooldown
}

// moveIntoBounds is rule 1: a stream with no open shard is left alone; one below MinShards or above MaxShards moves
// towards the bound with UpdateShardCount, at most doubling or halving per call (Kinesis' limits). Moving down to
// MaxShards keeps the calls reserved for scale-ups.
func (p *Policy) moveIntoBounds(s *situation) *Decision {
	c := p.cfg
	switch {
	case s.n == 0:
		return s.none(RuleNoShards, "the stream has no open shards")
	case s.n < c.MinShards:
		if s.used >= c.UpdateShardCountLimit {
			return s.none(RuleCallLimit, "%d open shards is below the minimum of %d, but all %d UpdateShardCount calls of the last 24 h are used", s.n, c.MinShards, s.used)
		}
		t := min(c.MinShards, 2*s.n)
		return s.update(RuleBelowMin, t, "%d open shards is below the minimum of %d; scaling to %d (at most double per call)", s.n, c.MinShards, t)
	case s.n > c.MaxShards:
		if s.used >= c.UpdateShardCountLimit-c.ScaleUpReserve {
			return s.none(RuleReserve, "%d open shards is above the maximum of %d, but only the %d calls reserved for scale-ups remain", s.n, c.MaxShards, c.UpdateShardCountLimit-s.used)
		}
		t := max(c.MaxShards, (s.n+1)/2)
		return s.update(RuleAboveMax, t, "%d open shards is above the maximum of %d; scaling to %d (at least half per call)", s.n, c.MaxShards, t)
	}
	return nil
}

// holdWithoutData is rule 2: without a known write datapoint within MaxDataAge the load is unknown, and unknown load
// is never taken for zero load, so the stream stays as it is.
func (p *Policy) holdWithoutData(s *situation) *Decision {
	if len(s.stream) > 0 && s.in.Now.Sub(s.stream[len(s.stream)-1].Start) <= p.cfg.MaxDataAge {
		return nil
	}
	return s.none(RuleNoData, "no IncomingBytes/IncomingRecords datapoint in the last %v: load unknown, keeping %d shards", p.cfg.MaxDataAge, s.n)
}

// scaleUp is rule 3: when scaleUpCause finds a cause, UpdateShardCount to the size scaleUpTarget gives; at
// MaxShards nothing, and with every call of the last 24 hours used a hot shard is split instead, if there is one.
func (p *Policy) scaleUp(s *situation) *Decision {
	c := p.cfg
	rule, cause := p.scaleUpCause(s)
	switch {
	case cause == "":
		return nil
	case s.n >= c.MaxShards:
		return s.none(RuleAtMax, "%s, but already at the maximum of %d shards", cause, c.MaxShards)
	case s.used >= c.UpdateShardCountLimit && s.hot != nil:
		return p.split(s, *s.hot, fmt.Sprintf("%s, all %d UpdateShardCount calls of the last 24 h are used, so splitting the busiest shard instead: %s", cause, s.used, s.hotReason))
	case s.used >= c.UpdateShardCountLimit:
		return s.none(RuleCallLimit, "%s, but all %d UpdateShardCount calls of the last 24 h are used", cause, s.used)
	}
	target, sizing := p.scaleUpTarget(s, rule)
	return s.update(rule, target, "%s; %s", cause, sizing)
}

// scaleUpCause says why the stream must grow, or returns an empty cause when it need not: utilisation above
// ScaleUpUtilisation for ScaleUpMinutes consecutive minutes of the current layout (RuleScaleUp); else throttling
// in the throttle window, unless a hot shard explains it while the stream as a whole is below the threshold
// (RuleThrottled; rule 4 splits the hot shard then); else a rising load that, predicted over the lead time (see
// leadTime), would be above ScaleUpUtilisation before a scale-up decided later could land (RuleScaleUpTrend).
func (p *Policy) scaleUpCause(s *situation) (Rule, string) {
	c := p.cfg
	// Only minutes measured on the current layout count: right after a scale-up the minutes before it settled still
	// show the old pressure, and acting on them again overshoots a short spike.
	if tail := s.stream.lastConsecutive(c.ScaleUpMinutes); tail != nil && !tail[0].Start.Before(s.layoutSince) {
		if low := tail.lowestLoad() / float64(s.n); low > c.ScaleUpUtilisation {
			return RuleScaleUp, fmt.Sprintf("utilisation above %.0f%% for %d minutes (lowest %.0f%%)", 100*c.ScaleUpUtilisation, c.ScaleUpMinutes, 100*low)
		}
	}
	throttled := s.stream.throttledSince(s.throttleSince)
	switch {
	case throttled > 0 && (s.hot == nil || s.utilisation > c.ScaleUpUtilisation):
		return RuleThrottled, fmt.Sprintf("%.0f records throttled in a minute at %.0f%% stream utilisation", throttled, 100*s.utilisation)
	case throttled > 0:
		return "", "" // a hot shard explains it: rule 4 splits that shard, which a stream-wide resize would not fix
	}
	return p.trendCause(s)
}

// trendCause is the trend part of scaleUpCause: a rising load (see series.growth) predicted above
// ScaleUpUtilisation of the open shards at the end of the lead time.
func (p *Policy) trendCause(s *situation) (Rule, string) {
	g := s.stream.growth()
	if g.perMinute <= 0 {
		return "", ""
	}
	// A load already above the threshold is the level rule's to judge (it waits for minutes of the current layout);
	// this rule acts on what is not yet there.
	threshold := p.cfg.ScaleUpUtilisation * float64(s.n)
	lead := p.leadTime(s.in.Now, s.stream[len(s.stream)-1])
	predicted := loadIn(s.stream, g, lead)
	if load(s.stream[len(s.stream)-1]) > threshold || predicted <= threshold {
		return "", ""
	}
	kind := "the newest minute jumped above the band of the ten before"
	if g.confirmed {
		kind = "a ramp over the last minutes"
	}
	return RuleScaleUpTrend, fmt.Sprintf("load rising %.2f shards per minute (%s) is predicted at %.0f%% of %d shards in %v, when a resize decided later could land",
		g.perMinute, kind, 100*predicted/float64(s.n), s.n, lead.Round(time.Second))
}

// scaleUpTarget sizes a scale-up made by rule and says how: the projected load (projectedLoad) at
// TargetUtilisation, or at ScarceCallsTargetUtilisation when the call leaves fewer than ScaleUpReserve calls; at
// least one shard more, at most double the shards and MaxShards.
func (p *Policy) scaleUpTarget(s *situation, rule Rule) (int, string) {
	c := p.cfg
	need := p.projectedLoad(s, rule == RuleScaleUpTrend)
	target, scarce := c.TargetUtilisation, ""
	if left := c.UpdateShardCountLimit - s.used - 1; left < c.ScaleUpReserve {
		target = c.ScarceCallsTargetUtilisation
		scarce = fmt.Sprintf(", sized with more headroom as only %d UpdateShardCount calls will be left in 24 h", left)
	}
	t := min(max(int(math.Ceil(need/target)), s.n+1), 2*s.n, c.MaxShards)
	return t, fmt.Sprintf("projected load %.2f shards at %.0f%% target gives %d shards (was %d)%s", need, 100*target, t, s.n, scarce)
}

// splitHotShard is rule 4: a hot shard (see hotShard) is split while the stream is below MaxShards.
func (p *Policy) splitHotShard(s *situation) *Decision {
	if s.hot == nil || s.n >= p.cfg.MaxShards {
		return nil
	}
	return p.split(s, *s.hot, s.hotReason)
}

// holdWindow is the stream's load over the scale-down hold window (the last ScaleDownMinutes minutes).
type holdWindow struct {
	// peak is the highest load of a known minute, in shards.
	peak float64
	// missing is how many minutes of the window have no datapoint.
	missing int
	// low is true when the peak is below ScaleDownUtilisation and no minute was throttled.
	low bool
	// target is the shard count a scale-down goes to: the peak at TargetUtilisation, at least half the shards and
	// MinShards.
	target int
}

func (p *Policy) holdWindow(s *situation) holdWindow {
	c := p.cfg
	w, missing := s.stream.window(c.ScaleDownMinutes)
	peak := w.peakLoad()
	return holdWindow{
		peak:    peak,
		missing: missing,
		low:     peak/float64(s.n) < c.ScaleDownUtilisation && w.throttledSince(time.Time{}) == 0,
		target:  max(c.MinShards, (s.n+1)/2, int(math.Ceil(peak/c.TargetUtilisation))),
	}
}

// scaleDown is rule 5: after a hold window of known minutes below ScaleDownUtilisation, UpdateShardCount down to
// the window's peak at TargetUtilisation, unless too many minutes lack data, the last action is within the
// cool-down (a scale-down continues one halted by Kinesis' halving limit at once), or only the calls reserved for
// scale-ups remain. Held back by the cool-down after a merge, or by the
// reserve, it merges a cold pair instead when there is one (merges cost no UpdateShardCount call).
func (p *Policy) scaleDown(s *situation) *Decision {
	c := p.cfg
	if s.n <= c.MinShards {
		return nil
	}
	h := s.hold
	if !h.low || h.target >= s.n {
		return nil
	}
	switch {
	case h.missing > c.MaxMissingMinutes:
		return s.none(RuleNotEnoughData, "load looks low but %d of the last %d minutes have no datapoint (at most %d allowed): not scaling down on unknown load", h.missing, c.ScaleDownMinutes, c.MaxMissingMinutes)
	case p.coolingDown(s) && !s.in.History.LastScaleDown:
		if m := p.mergePair(s); m != nil && s.in.History.LastActionKind == ActionMergeShards {
			return p.merge(s, m, "continuing a scale-down by merges (the cool-down does not apply between merges)")
		}
		sinceAction := s.in.Now.Sub(s.in.History.LastAction)
		return s.none(RuleCooldown, "peak utilisation %.0f%% over %d minutes is below %.0f%%, but the last action was %v ago (cool-down %v)", 100*h.peak/float64(s.n), c.ScaleDownMinutes, 100*c.ScaleDownUtilisation, sinceAction.Round(time.Second), c.ScaleDownCooldown)
	case s.used >= c.UpdateShardCountLimit-c.ScaleUpReserve:
		if m := p.mergePair(s); m != nil {
			return p.merge(s, m, fmt.Sprintf("stream is below %.0f%% but only the %d UpdateShardCount calls reserved for scale-ups remain, so merging instead", 100*c.ScaleDownUtilisation, c.UpdateShardCountLimit-s.used))
		}
		return s.none(RuleReserve, "peak utilisation %.0f%% over %d minutes is below %.0f%%, but only the %d UpdateShardCount calls reserved for scale-ups remain", 100*h.peak/float64(s.n), c.ScaleDownMinutes, 100*c.ScaleDownUtilisation, c.UpdateShardCountLimit-s.used)
	}
	return s.update(RuleScaleDown, h.target, "peak utilisation %.0f%% over the last %d minutes is below %.0f%%; peak load %.2f shards at %.0f%% target gives %d shards (was %d)", 100*h.peak/float64(s.n), c.ScaleDownMinutes, 100*c.ScaleDownUtilisation, h.peak, 100*c.TargetUtilisation, h.target, s.n)
}

// mergeNeighbours is rule 6: merge the best-fitting adjacent pair (see mergePair) once the cool-down is over, or
// right after a merge or split (one reshaping carried out a step at a time).
func (p *Policy) mergeNeighbours(s *situation) *Decision {
	if p.coolingDown(s) && !rebalancing(s.in.History.LastActionKind) {
		return nil
	}
	m := p.mergePair(s)
	if m == nil {
		return nil
	}
	return p.merge(s, m, "two adjacent shards fit in one")
}

// steady is the decision when no rule applies: the load is within the thresholds, or what is off cannot be acted on.
func (p *Policy) steady(s *situation) Decision {
	c := p.cfg
	return *s.none(RuleSteady, "utilisation %.0f%% of %d shards is within %.0f%%..%.0f%%", 100*s.utilisation, s.n, 100*c.ScaleDownUtilisation, 100*c.ScaleUpUtilisation)
}
