// Command simulate replays load traces through the shard autoscaler's policy and through a model of
// amazon-kinesis-scaling-utils with the blog's settings, on a model of a Kinesis stream (per-shard capacity,
// resharding delay, one resharding at a time, UpdateShardCount within [n/2, 2n] and 10 calls per rolling 24 h,
// CloudWatch publication latency and lost datapoints), and prints throttled minutes, shard-hours and scaling calls
// next to the shard-hours of a per-minute oracle and of the rules floor (the least any controller keeping the
// policy's thresholds can spend). Flags set the policy's thresholds, to show the trade-off of other settings.
//
//	go run ./lambda/autoscaler/simulate
//	go run ./lambda/autoscaler/simulate -scale-up 0.5 -target 0.45 -scale-down 0.25
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
)

func main() {
	var set Settings
	flag.IntVar(&set.UpdateDelay, "update-delay", 4, "minutes UpdateShardCount takes")
	flag.IntVar(&set.SplitMergeDelay, "split-merge-delay", 1, "minutes SplitShard and MergeShards take")
	flag.IntVar(&set.MetricLatency, "metric-latency", 2, "minutes until a minute's datapoint is readable")
	flag.Float64Var(&set.MissingRate, "missing-rate", 0.02, "share of datapoints CloudWatch loses")
	flag.Uint64Var(&set.Seed, "seed", 1, "seed for lost datapoints and load noise")
	cfg := policy.Config{MinShards: 1, MaxShards: 16}
	flag.Float64Var(&cfg.ScaleUpUtilisation, "scale-up", 0, "policy: scale-up utilisation (0: the policy's default, 0.70)")
	flag.Float64Var(&cfg.TargetUtilisation, "target", 0, "policy: utilisation a new count is sized for (0: default, 0.65)")
	flag.Float64Var(&cfg.ScaleDownUtilisation, "scale-down", 0, "policy: scale-down utilisation (0: default, 0.35)")
	flag.IntVar(&cfg.ScaleDownMinutes, "hold", 0, "policy: minutes below the scale-down utilisation before a scale-down (0: default, 15)")
	actions := flag.Bool("actions", false, "print every action of this policy, trace by trace")
	seeds := flag.Int("seeds", 10, "also replay every trace with seeds 1..N and summarise the spread (0: skip)")
	flag.Parse()
	if err := run(os.Stdout, set, cfg, *actions, *seeds); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

// run replays every trace through a policy with cfg and prints the tables; the oracle at the scale-up threshold and
// the rules floor follow cfg's thresholds, so other settings show their own trade-off.
func run(w io.Writer, set Settings, cfg policy.Config, actions bool, seeds int) error {
	p, err := policy.New(cfg)
	if err != nil {
		return err
	}
	rows := make([]Row, 0, len(Traces()))
	for _, tr := range Traces() {
		var log io.Writer
		if actions {
			fmt.Fprintf(w, "== %s\n", tr.Name)
			log = w
		}
		row, err := Simulate(tr, p, set, log)
		if err != nil {
			return fmt.Errorf("trace %q: %w", tr.Name, err)
		}
		rows = append(rows, row)
	}
	if err := printTable(w, rows, p.Config(), set); err != nil {
		return err
	}
	if seeds < 1 {
		return nil
	}
	spread, err := SimulateSeeds(Traces(), p, set, seeds)
	if err != nil {
		return err
	}
	return printSpread(w, spread, p.Config())
}

func printTable(w io.Writer, rows []Row, cfg policy.Config, set Settings) error {
	atUp := oracleAtLabel(cfg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\tthrottled min\t\tshard-hours\t\t\t\t\tUpdateShardCount calls (max in 24 h)\t\tsplits+merges\t")
	fmt.Fprintf(tw, "\tpolicy\tSU\tpolicy\tSU\toracle\t%s\trules floor\tpolicy\tSU (refused)\tpolicy\t\n", atUp)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d (%d)\t%d (%d) (%d)\t%d\t\n", r.Trace,
			r.Policy.ThrottledMinutes, r.ScalingUtils.ThrottledMinutes,
			r.Policy.ShardHours, r.ScalingUtils.ShardHours, r.Oracle, r.OracleAtScaleUp, r.RulesFloor,
			r.Policy.UpdateCalls, r.Policy.MaxCallsIn24h, r.ScalingUtils.UpdateCalls, r.ScalingUtils.MaxCallsIn24h, r.SURefused,
			r.Policy.SplitsMerges)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The stream model refuses an 11th call, so the count alone cannot exceed 10: the column also requires that
	// Kinesis refused none of the policy's calls.
	fmt.Fprintf(tw, "trace\tfewer throttled min than SU\tpolicy/oracle\t<= 1.25\tpolicy/%s\t<= 1.25\trules floor/oracle\tpolicy/rules floor\t<= 10 calls in 24 h, none refused\t\n", atUp)
	for _, r := range rows {
		ratio, ratio70 := r.Policy.ShardHours/r.Oracle, r.Policy.ShardHours/r.OracleAtScaleUp
		fmt.Fprintf(tw, "%s\t%v\t%.2f\t%v\t%.2f\t%v\t%.2f\t%.2f\t%v\t\n", r.Trace,
			r.Policy.ThrottledMinutes < r.ScalingUtils.ThrottledMinutes,
			ratio, ratio <= 1.25, ratio70, ratio70 <= 1.25, r.RulesFloor/r.Oracle, r.Policy.ShardHours/r.RulesFloor,
			r.Policy.MaxCallsIn24h <= 10 && r.PolicyRefused == 0)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	set = set.withDefaults()
	_, err := fmt.Fprintf(w, `
oracle: fewest shards carrying each minute at 100%% of capacity; %s: the same at the %.0f%% scale-up threshold.
rules floor: the fewest shard-hours of any controller that never throttles, never runs %d minutes in a row above %.0f%%
and lowers the count only after %d minutes below %.0f%% at its current count, even one that knows the whole trace and
reshards instantly, for free and without limits. It is what those rules cost on their own: rules floor/oracle above
1.25 means no policy that keeps them can reach 1.25x the oracle on that trace. A load step beyond capacity is
first readable %d min after it starts and UpdateShardCount takes %d min, so any controller reading CloudWatch and
holding no spare shard throttles for at least %d minutes of it.
`, atUp, 100*cfg.ScaleUpUtilisation, cfg.ScaleUpMinutes, 100*cfg.ScaleUpUtilisation, cfg.ScaleDownMinutes, 100*cfg.ScaleDownUtilisation,
		set.MetricLatency, set.UpdateDelay, set.MetricLatency+set.UpdateDelay)
	return err
}

// printSpread summarises each trace over several seeds (which minutes lose their datapoint and the load noise), so
// that a comparison which holds only for the default seed shows as such.
func printSpread(w io.Writer, spread [][]Row, cfg policy.Config) error {
	if len(spread) == 0 || len(spread[0]) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nacross seeds 1..%d (lost datapoints and load noise differ per seed):\n", len(spread[0]))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "trace\tthrottled min: policy < SU\t= SU\t> SU\tpolicy\tSU\tpolicy/oracle\tpolicy/%s\trules floor/oracle\tpolicy/rules floor\tmax calls in 24 h\t\n", oracleAtLabel(cfg))
	for _, rows := range spread {
		var fewer, same, more, calls int
		pol, su := span[int]{verb: "%d"}, span[int]{verb: "%d"}
		ratio, ratio70 := span[float64]{verb: "%.2f"}, span[float64]{verb: "%.2f"}
		floor, vsFloor := span[float64]{verb: "%.2f"}, span[float64]{verb: "%.2f"}
		for _, r := range rows {
			switch p, s := r.Policy.ThrottledMinutes, r.ScalingUtils.ThrottledMinutes; {
			case p < s:
				fewer++
			case p == s:
				same++
			default:
				more++
			}
			pol.add(r.Policy.ThrottledMinutes)
			su.add(r.ScalingUtils.ThrottledMinutes)
			ratio.add(r.Policy.ShardHours / r.Oracle)
			ratio70.add(r.Policy.ShardHours / r.OracleAtScaleUp)
			floor.add(r.RulesFloor / r.Oracle)
			vsFloor.add(r.Policy.ShardHours / r.RulesFloor)
			calls = max(calls, r.Policy.MaxCallsIn24h)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", rows[0].Trace, fewer, same, more, pol, su, ratio, ratio70,
			floor, vsFloor, calls)
	}
	return tw.Flush()
}

// oracleAtLabel names the oracle held at cfg's scale-up utilisation, e.g. "oracle@70%".
func oracleAtLabel(cfg policy.Config) string {
	return fmt.Sprintf("oracle@%.0f%%", 100*cfg.ScaleUpUtilisation)
}

// span is the range of a figure over seeds, printed with verb.
type span[T int | float64] struct {
	verb   string
	lo, hi T
	set    bool
}

func (s *span[T]) add(v T) {
	if !s.set {
		s.lo, s.hi, s.set = v, v, true
	}
	s.lo, s.hi = min(s.lo, v), max(s.hi, v)
}

// String is "lo..hi", or one value when both print the same.
func (s span[T]) String() string {
	lo, hi := fmt.Sprintf(s.verb, s.lo), fmt.Sprintf(s.verb, s.hi)
	if lo == hi {
		return lo
	}
	return lo + ".." + hi
}
