package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

// simStart is the wall-clock time of minute 0 of every trace.
var simStart = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// minuteTime is a minute index within a trace.
type minuteTime int

// Time is the start of the minute.
func (m minuteTime) Time() time.Time { return simStart.Add(time.Duration(m) * time.Minute) }

// Settings are the parts of the world every policy sees the same way.
type Settings struct {
	// UpdateDelay is how long UpdateShardCount takes, in minutes. Default: 4.
	UpdateDelay int
	// SplitMergeDelay is how long SplitShard and MergeShards take, in minutes. Default: 1.
	SplitMergeDelay int
	// MetricLatency is how many minutes after its start a minute's datapoint becomes readable. Default: 2.
	MetricLatency int
	// MissingRate is the share of datapoints CloudWatch never delivers. Default: 0.02.
	MissingRate float64
	// Seed picks which datapoints go missing and the load noise. Default: 1.
	Seed uint64
	// Prices are what the cost model charges. Default: DefaultPrices (when every price is zero).
	Prices Prices
	// Readers are the consumers that read everything written. Default: none.
	Readers Readers
}

func (s Settings) withDefaults() Settings {
	if s.UpdateDelay == 0 {
		s.UpdateDelay = 4
	}
	if s.SplitMergeDelay == 0 {
		s.SplitMergeDelay = 1
	}
	if s.MetricLatency == 0 {
		s.MetricLatency = 2
	}
	if s.MissingRate == 0 {
		s.MissingRate = 0.02
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if s.Prices == (Prices{}) {
		s.Prices = DefaultPrices
	}
	return s
}

// Result is how one controller did on one trace.
type Result struct {
	// Controller names the controller ("this policy" or "scaling utils").
	Controller string
	// ThrottledMinutes counts the minutes in which at least one shard got more than its capacity.
	ThrottledMinutes int
	// ShardHours is the open shards summed over the trace's minutes, in hours: what the stream costs.
	ShardHours float64
	// UpdateCalls are UpdateShardCount calls Kinesis accepted; Rejected are calls it refused (limit, in use, range).
	UpdateCalls, Rejected int
	// SplitsMerges are accepted SplitShard and MergeShards calls.
	SplitsMerges int
	// MaxCallsIn24h is the most accepted UpdateShardCount calls in any rolling 24 hours.
	MaxCallsIn24h int
	// MaxShards is the most open shards at any minute.
	MaxShards int
	// Shards are the open shards of each minute, and Throttled whether the minute throttled (for the charts).
	Shards    []int
	Throttled []bool
}

// controller decides once a minute, like the Lambda's schedule.
type controller interface {
	name() string
	// step runs at the start of minute t; metrics holds every minute's observation up to t-1 (the controller
	// must respect the publication latency itself through visible).
	step(t minuteTime, s *StreamModel, v view) error
}

// view is what CloudWatch lets a controller read at a given minute: the minutes observed so far, less those whose
// datapoint it lost, published latency minutes after they start.
type view struct {
	latency  int
	missRate float64
	seed     uint64
	// stream and shards are the delivered stream-level and shard-level minutes, oldest first.
	stream []policy.Minute
	shards map[string][]policy.Minute
}

// record adds the observation of minute m, dropping the datapoints CloudWatch loses.
func (v *view) record(m int, obs observation) {
	if !missing(v.seed, m, "stream", v.missRate) {
		v.stream = append(v.stream, obs.stream)
	}
	if v.shards == nil {
		v.shards = map[string][]policy.Minute{}
	}
	for id, mi := range obs.shards {
		if !missing(v.seed, m, id, v.missRate) {
			v.shards[id] = append(v.shards[id], mi)
		}
	}
}

// published returns the minutes of ms (oldest first) from the last n minutes before t that are published by t.
func (v view) published(ms []policy.Minute, t minuteTime, n int) []policy.Minute {
	from, to := (t - minuteTime(n)).Time(), (t - minuteTime(v.latency)).Time()
	i, _ := slices.BinarySearchFunc(ms, from, func(m policy.Minute, at time.Time) int { return m.Start.Compare(at) })
	j, found := slices.BinarySearchFunc(ms, to, func(m policy.Minute, at time.Time) int { return m.Start.Compare(at) })
	if found {
		j++
	}
	return ms[i:max(i, j):max(i, j)]
}

// streamMinutes returns the published, delivered stream-level minutes of the last n minutes before t.
func (v view) streamMinutes(t minuteTime, n int) []policy.Minute { return v.published(v.stream, t, n) }

// shardMinutes returns the published, delivered shard-level minutes of the last n minutes before t.
func (v view) shardMinutes(t minuteTime, n int) map[string][]policy.Minute {
	out := make(map[string][]policy.Minute, len(v.shards))
	for id, ms := range v.shards {
		if w := v.published(ms, t, n); len(w) > 0 {
			out[id] = w
		}
	}
	return out
}

// newest returns the newest published minute, and false when CloudWatch did not deliver it.
func (v view) newest(t minuteTime) (policy.Minute, bool) {
	w := v.published(v.stream, t, v.latency)
	if len(w) == 0 {
		return policy.Minute{}, false
	}
	return w[len(w)-1], true
}

// Run replays a trace through one controller.
func Run(tr Trace, c controller, set Settings) (Result, error) {
	set = set.withDefaults()
	s := NewStreamModel(tr.StartShards, set.UpdateDelay, set.SplitMergeDelay)
	v := view{latency: set.MetricLatency, missRate: set.MissingRate, seed: set.Seed}
	res := Result{Controller: c.name()}
	for t := range minuteTime(tr.Minutes) {
		s.Tick(int(t))
		if err := c.step(t, s, v); err != nil {
			return res, fmt.Errorf("%s at minute %d: %w", c.name(), t, err)
		}
		res.MaxShards = max(res.MaxShards, s.OpenShards())
		obs := s.Serve(t, tr.load(t, set.Seed), tr.RecordSize)
		if obs.throttled {
			res.ThrottledMinutes++
		}
		res.Shards, res.Throttled = append(res.Shards, s.OpenShards()), append(res.Throttled, obs.throttled)
		v.record(int(t), obs)
	}
	res.ShardHours = s.shardHours
	res.MaxCallsIn24h = s.maxIn24h
	res.UpdateCalls = len(s.updateCalls)
	return res, nil
}

// policyController runs this project's policy, as the Lambda does: skip while UPDATING, mark the history settled,
// decide, act, record the action.
type policyController struct {
	p       *policy.Policy
	history policy.History
	splits  *int
	refused *int
	// log, when not nil, receives every decision that is not "none" as one line.
	log io.Writer
	// calls are the UpdateShardCount calls Kinesis accepted, in order.
	calls []updateCall
}

// updateCall is one accepted UpdateShardCount call.
type updateCall struct {
	minute   minuteTime
	from, to int
}

func (c *policyController) name() string { return "this policy" }

func (c *policyController) step(t minuteTime, s *StreamModel, v view) error {
	if s.Updating() {
		return nil
	}
	now := t.Time().Add(30 * time.Second)
	c.history, _ = c.history.MarkSettled(now)
	shards, parents := s.policyShards()
	window := c.p.Config().ScaleDownMinutes + 10
	d := c.p.Decide(policy.Input{
		Now: now, Shards: shards, ClosedShards: parents, History: c.history,
		Stream: v.streamMinutes(t, window), ShardMinutes: v.shardMinutes(t, window),
	})
	if c.log != nil && d.Action != policy.ActionNone {
		fmt.Fprintf(c.log, "%s  %5d min  %-16s %2d -> %2d  %s\n", t.Time().Format("15:04"), t, d.Action, d.CurrentShardCount, d.TargetShardCount, d.Reason)
	}
	var err error
	switch d.Action {
	case policy.ActionNone:
		return nil
	case policy.ActionUpdateShardCount:
		err = s.UpdateShardCount(int(t), d.TargetShardCount)
	case policy.ActionSplitShard:
		key, ok := parseKey(d.NewStartingHashKey)
		if !ok {
			return fmt.Errorf("bad split key %q", d.NewStartingHashKey)
		}
		err = s.SplitShard(int(t), d.ShardID, key)
	case policy.ActionMergeShards:
		err = s.MergeShards(int(t), d.ShardID, d.AdjacentShardID)
	}
	if err != nil {
		// The policy plans within the limits, so a refusal is counted and shown (and tested to stay zero).
		*c.refused++
		return nil
	}
	if d.Action == policy.ActionUpdateShardCount {
		c.calls = append(c.calls, updateCall{minute: t, from: d.CurrentShardCount, to: d.TargetShardCount})
	} else {
		*c.splits++
	}
	c.history = c.history.RecordDecision(d, now)
	return nil
}

// scalingUtilsController models amazon-kinesis-scaling-utils' StreamMonitor with the blog's settings: every minute
// it reads the last scaleAfterMins (1) minutes of PUT bytes and records; a minute above 75 % of the open shards'
// capacity is a high sample, below 25 % a low sample, and a minute with no datapoint is a low sample too; one high
// sample scales up by 2 shards, one low sample scales down by 1; 1-minute cool-off after a scaling action; min 1,
// max 16. It calls UpdateShardCount and does not track the daily limit: refused calls are retried next minute.
// Where its behaviour is unclear the model is generous to it: it reads the newest published minute rather than the
// still-unpublished current one, and a scale-up beyond 2n is clamped to 2n instead of failing.
type scalingUtilsController struct {
	lastAction minuteTime
	acted      bool
	refused    *int
}

func (c *scalingUtilsController) name() string { return "scaling utils" }

func (c *scalingUtilsController) step(t minuteTime, s *StreamModel, v view) error {
	const (
		upPct, downPct = 0.75, 0.25
		upBy, downBy   = 2, 1
		coolOff        = 1
		minS, maxS     = 1, 16
	)
	if s.Updating() || (c.acted && int(t-c.lastAction) < coolOff) {
		return nil
	}
	n := s.OpenShards()
	pct := 0.0 // a missing datapoint is a low sample
	if m, ok := v.newest(t); ok {
		pct = max(m.IncomingBytes/(float64(n)*policy.WriteBytesPerShard*60), m.IncomingRecords/(float64(n)*policy.WriteRecordsPerShard*60))
	}
	target := n
	switch {
	case pct > upPct:
		target = min(n+upBy, maxS, 2*n)
	case pct < downPct:
		target = max(n-downBy, minS)
	}
	if target == n {
		return nil
	}
	if err := s.UpdateShardCount(int(t), target); err != nil {
		if !errors.Is(err, errLimitExceeded) && !errors.Is(err, errResourceInUse) {
			return err
		}
		*c.refused++
		return nil
	}
	c.lastAction, c.acted = t, true
	return nil
}

// oracleHours is the shard-hours of a controller that knows each minute's load and reshards instantly and for free
// to the fewest shards carrying it at capacity c.
func oracleHours(tr Trace, set Settings, c float64) float64 {
	set = set.withDefaults()
	h := 0.0
	for t := range minuteTime(tr.Minutes) {
		h += float64(oracleShards(tr.load(t, set.Seed), c)) / 60
	}
	return h
}

// Row is one trace's line of the printed table.
type Row struct {
	// Trace is the trace's name.
	Trace string
	// Policy and ScalingUtils are how this project's policy and the Scaling Utils model did on the trace.
	Policy, ScalingUtils Result
	// Oracle and OracleAtScaleUp are the shard-hours of an instant, free resharder running each minute the fewest
	// shards that carry its load at 100 % and at the policy's ScaleUpUtilisation of capacity (see oracleHours).
	Oracle, OracleAtScaleUp float64
	// RulesFloor is the shard-hours of the best controller that keeps the scale-up and scale-down rules with
	// perfect foresight and instant, unlimited resharding (see rulesFloorHours): what those rules alone cost.
	RulesFloor float64
	// PolicyRefused and SURefused count the resharding calls the stream model refused from each controller.
	PolicyRefused, SURefused int
	// Hours is the trace's length.
	Hours float64
	// FixedPeakShards is the size of the fixed-peak option (see fixedPeakShards).
	FixedPeakShards int
	// Options are the four capacity options priced: this autoscaler, Scaling Utils, a fixed peak size, on-demand.
	Options []Option
	// Cheapest names the cheapest option that never throttled, "" when every one did.
	Cheapest string
}

// Simulate runs a trace through this policy and Scaling Utils, computes both oracles and the rules floor, and
// prices the capacity options.
// When log is not nil, the policy's actions are written to it.
func Simulate(tr Trace, p *policy.Policy, set Settings, log io.Writer) (Row, error) {
	row := Row{Trace: tr.Name}
	var splits int
	pc := &policyController{p: p, splits: &splits, refused: &row.PolicyRefused, log: log}
	var err error
	if row.Policy, err = Run(tr, pc, set); err != nil {
		return row, err
	}
	row.Policy.SplitsMerges = splits
	row.Policy.Rejected = row.PolicyRefused
	su := &scalingUtilsController{refused: &row.SURefused}
	if row.ScalingUtils, err = Run(tr, su, set); err != nil {
		return row, err
	}
	row.ScalingUtils.Rejected = row.SURefused
	row.Oracle = oracleHours(tr, set, 1.0)
	row.OracleAtScaleUp = oracleHours(tr, set, p.Config().ScaleUpUtilisation)
	row.RulesFloor = rulesFloorHours(tr, set, floorRulesOf(p.Config()))
	row.Hours, row.FixedPeakShards = float64(tr.Minutes)/60, fixedPeakShards(tr, set)
	row.Options = options(tr, set, row.Policy, row.ScalingUtils)
	row.Cheapest = cheapest(row.Options)
	return row, nil
}

// SimulateSeeds runs Simulate for every trace with seeds 1..seeds (set's other settings unchanged), the traces in
// parallel, and returns the rows by trace, then by seed.
func SimulateSeeds(traces []Trace, p *policy.Policy, set Settings, seeds int) ([][]Row, error) {
	rows := make([][]Row, len(traces))
	errs := make([]error, len(traces))
	var wg sync.WaitGroup
	for i, tr := range traces {
		wg.Go(func() {
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				s := set
				s.Seed = seed
				row, err := Simulate(tr, p, s, nil)
				if err != nil {
					errs[i] = fmt.Errorf("trace %q, seed %d: %w", tr.Name, seed, err)
					return
				}
				rows[i] = append(rows[i], row)
			}
		})
	}
	wg.Wait()
	return rows, errors.Join(errs...)
}

// noiseKeys are the four coins whose heads add a quarter of the wobble each.
var noiseKeys = [4]string{"noise0", "noise1", "noise2", "noise3"}

// noise is a deterministic load wobble in [-amp, amp].
func noise(seed uint64, t minuteTime, amp float64) float64 {
	if missing(seed, int(t), "noise-sign", 0.5) {
		amp = -amp
	}
	h := 0.0
	for _, key := range noiseKeys {
		if missing(seed, int(t), key, 0.5) {
			h += 0.25
		}
	}
	return amp * h
}

func roundUp(x float64) int { return int(math.Ceil(x - 1e-9)) }
