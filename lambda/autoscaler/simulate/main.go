// Command simulate replays load traces through the shard autoscaler's policy and through a model of
// amazon-kinesis-scaling-utils with the blog's settings, on a model of a Kinesis stream (per-shard capacity,
// resharding delay, one resharding at a time, UpdateShardCount within [n/2, 2n] and 10 calls per rolling 24 h,
// CloudWatch publication latency and lost datapoints). It prints throttled minutes, shard-hours and scaling calls
// next to the shard-hours of a per-minute oracle and of the rules floor (the least any controller keeping the
// policy's thresholds can spend), then what each capacity option costs on each trace (this autoscaler, Scaling
// Utils, a fixed peak size, on-demand) at list prices given by flags, and which is cheapest without throttling.
// With -charts it writes one SVG chart per trace. Flags set the policy's thresholds, to show the trade-off of other
// settings.
//
//	go run ./lambda/autoscaler/simulate -charts lambda/autoscaler/simulate/charts
//	go run ./lambda/autoscaler/simulate -scale-up 0.5 -target 0.45 -scale-down 0.25
//	go run ./lambda/autoscaler/simulate -fanout-consumers 0 -polling-consumers 2 -price-shard-hour 0.0165
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
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
	flag.IntVar(&set.Readers.FanOut, "fanout-consumers", 1, "enhanced fan-out consumers reading everything (the stack registers one)")
	flag.IntVar(&set.Readers.Polling, "polling-consumers", 0, "GetRecords consumers reading everything")
	set.Prices = DefaultPrices
	pr := &set.Prices
	for _, f := range []struct {
		name  string
		price *float64
		usage string
	}{
		{"shard-hour", &pr.ShardHour, "provisioned shard-hour"},
		{"put-units", &pr.PutUnitsPerMillion, "million PUT payload units (25 KiB)"},
		{"fanout-shard-hour", &pr.FanOutConsumerShardHour, "enhanced fan-out consumer-shard-hour (provisioned)"},
		{"fanout-gb", &pr.FanOutGB, "GiB read by enhanced fan-out (provisioned)"},
		{"on-demand-stream-hour", &pr.OnDemandStreamHour, "on-demand stream-hour"},
		{"on-demand-in-gb", &pr.OnDemandInGB, "GiB written on-demand (records rounded up to 1 KiB)"},
		{"on-demand-out-gb", &pr.OnDemandOutGB, "GiB read by GetRecords on-demand (rounded up the same)"},
		{"on-demand-fanout-gb", &pr.OnDemandFanOutGB, "GiB read by enhanced fan-out on-demand (rounded up the same)"},
	} {
		flag.Float64Var(f.price, "price-"+f.name, *f.price, "USD per "+f.usage)
	}
	cfg := policy.Config{MinShards: 1, MaxShards: 16}
	flag.Float64Var(&cfg.ScaleUpUtilisation, "scale-up", 0, "policy: scale-up utilisation (0: the policy's default, 0.75)")
	flag.Float64Var(&cfg.TargetUtilisation, "target", 0, "policy: utilisation a new count is sized for (0: default, 0.70)")
	flag.Float64Var(&cfg.ScaleDownUtilisation, "scale-down", 0, "policy: scale-down utilisation (0: default, 0.35)")
	flag.IntVar(&cfg.ScaleDownMinutes, "hold", 0, "policy: minutes below the scale-down utilisation before a scale-down (0: default, 15)")
	var out outputs
	flag.BoolVar(&out.actions, "actions", false, "print every action of this policy, trace by trace")
	flag.IntVar(&out.seeds, "seeds", 10, "also replay every trace with seeds 1..N and summarise the spread (0: skip)")
	flag.StringVar(&out.charts, "charts", "", "write one SVG chart per trace (default seed) into this directory")
	flag.Parse()
	if err := run(os.Stdout, set, cfg, out); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

// outputs are what run prints or writes besides the tables of the default seed.
type outputs struct {
	// actions prints every action of the policy, trace by trace.
	actions bool
	// seeds replays every trace with seeds 1..seeds and prints the spread (0: skip).
	seeds int
	// charts is the directory the charts are written to ("": none).
	charts string
}

// run replays every trace through a policy with cfg and prints the tables; the oracle at the scale-up threshold and
// the rules floor follow cfg's thresholds, so other settings show their own trade-off.
func run(w io.Writer, set Settings, cfg policy.Config, out outputs) error {
	p, err := policy.New(cfg)
	if err != nil {
		return err
	}
	rows := make([]Row, 0, len(Traces()))
	for _, tr := range Traces() {
		var log io.Writer
		if out.actions {
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
	if err := printCosts(w, rows, set); err != nil {
		return err
	}
	if out.charts != "" {
		if err := writeCharts(out.charts, Traces(), rows, set); err != nil {
			return err
		}
		fmt.Fprintf(w, "\ncharts written to %s\n", out.charts)
	}
	if out.seeds < 1 {
		return nil
	}
	spread, err := SimulateSeeds(Traces(), p, set, out.seeds)
	if err != nil {
		return err
	}
	return printSpread(w, spread)
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
	fmt.Fprintln(tw, "trace\tnot worse than SU in both\tpolicy/rules floor\t<= 1.15\trules floor/oracle\t<= 10 calls in 24 h, none refused\t")
	for _, r := range rows {
		ratio := r.Policy.ShardHours / r.RulesFloor
		fmt.Fprintf(tw, "%s\t%v\t%.2f\t%v\t%.2f\t%v\t\n", r.Trace, !dominated(r), ratio, ratio <= 1.15,
			r.RulesFloor/r.Oracle, r.Policy.MaxCallsIn24h <= 10 && r.PolicyRefused == 0)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	set = set.withDefaults()
	_, err := fmt.Fprintf(w, `
oracle: fewest shards carrying each minute at 100%% of capacity; %s: the same at the %.0f%% scale-up threshold.
rules floor: the fewest shard-hours of any controller that never throttles, never runs %d minutes in a row above %.0f%%
and lowers the count only after %d minutes below %.0f%% at its current count, even one that knows the whole trace and
reshards instantly, for free and without limits: what the policy's thresholds cost on their own. A load step beyond
capacity is first readable %d min after it starts and UpdateShardCount takes %d min, so any controller reading
CloudWatch and holding no spare shard throttles for at least %d minutes of it.
`, atUp, 100*cfg.ScaleUpUtilisation, cfg.ScaleUpMinutes, 100*cfg.ScaleUpUtilisation, cfg.ScaleDownMinutes, 100*cfg.ScaleDownUtilisation,
		set.MetricLatency, set.UpdateDelay, set.MetricLatency+set.UpdateDelay)
	return err
}

// dominated reports whether Scaling Utils did better than this policy on both counts: fewer throttled minutes and
// fewer shard-hours.
func dominated(r Row) bool {
	return r.Policy.ThrottledMinutes > r.ScalingUtils.ThrottledMinutes && r.Policy.ShardHours > r.ScalingUtils.ShardHours
}

// printCosts prints what each capacity option cost on each trace, and the cheapest one that never throttled.
func printCosts(w io.Writer, rows []Row, set Settings) error {
	set = set.withDefaults()
	fmt.Fprintf(w, "\ncost in USD over each trace (%d fan-out and %d polling consumers; prices: flags -price-*):\n", set.Readers.FanOut, set.Readers.Polling)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\thours\tautoscaler: throttled min\tshard-h\tUSD\tcalls\tscaling utils: throttled min\tshard-h\tUSD\tcalls\tfixed peak: shards\tUSD\ton-demand: throttled min\tUSD\tcheapest without throttling\t")
	for _, r := range rows {
		o := optionsByName(r.Options)
		auto, su, fixed, od := o[OptionAutoscaler], o[OptionScalingUtils], o[OptionFixedPeak], o[OptionOnDemand]
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%.1f\t%.2f\t%d\t%d\t%.1f\t%.2f\t%d\t%d\t%.2f\t%d\t%.2f\t%s\t\n", r.Trace, r.Hours,
			auto.ThrottledMinutes, auto.ShardHours, auto.Dollars, auto.Calls,
			su.ThrottledMinutes, su.ShardHours, su.Dollars, su.Calls,
			r.FixedPeakShards, fixed.Dollars, od.ThrottledMinutes, od.Dollars, cmp.Or(r.Cheapest, "none"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, `fixed peak: the fewest uniform shards on which the trace never throttles, chosen knowing the trace.
on-demand: capacity twice the peak of the last 30 days (of the trace itself when it repeats daily, else of its first
minute), at least 4 MiB/s; a rise beyond that within 15 minutes throttles.`)
	return err
}

// optionsByName indexes opts by their names.
func optionsByName(opts []Option) map[string]Option {
	m := make(map[string]Option, len(opts))
	for _, o := range opts {
		m[o.Name] = o
	}
	return m
}

// printSpread summarises each trace over several seeds (which minutes lose their datapoint and the load noise), so
// that a comparison which holds only for the default seed shows as such, then the totals the targets are about.
func printSpread(w io.Writer, spread [][]Row) error {
	if len(spread) == 0 || len(spread[0]) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nacross seeds 1..%d (lost datapoints and load noise differ per seed):\n", len(spread[0]))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\tthrottled min: policy\tSU\tshard-hours: policy\tSU\tworse than SU in both\tpolicy/rules floor\tmax calls in 24 h\trefused\tcheapest without throttling\t")
	var pol, su int
	for _, rows := range spread {
		polT, suT := span[int]{verb: "%d"}, span[int]{verb: "%d"}
		polH, suH, vsFloor := span[float64]{verb: "%.1f"}, span[float64]{verb: "%.1f"}, span[float64]{verb: "%.2f"}
		worse, calls, refused := 0, 0, 0
		best := map[string]int{}
		for _, r := range rows {
			polT.add(r.Policy.ThrottledMinutes)
			suT.add(r.ScalingUtils.ThrottledMinutes)
			polH.add(r.Policy.ShardHours)
			suH.add(r.ScalingUtils.ShardHours)
			vsFloor.add(r.Policy.ShardHours / r.RulesFloor)
			if dominated(r) {
				worse++
			}
			calls, refused = max(calls, r.Policy.MaxCallsIn24h), refused+r.PolicyRefused
			pol, su = pol+r.Policy.ThrottledMinutes, su+r.ScalingUtils.ThrottledMinutes
			best[cmp.Or(r.Cheapest, "none")]++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d of %d\t%s\t%d\t%d\t%s\t\n", rows[0].Trace, polT, suT, polH, suH, worse, len(rows),
			vsFloor, calls, refused, counts(best))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "throttled minutes over all traces and seeds: policy %d, Scaling Utils %d (%.1f%%)\n", pol, su, 100*float64(pol)/float64(max(1, su)))
	return err
}

// counts prints how often each name occurred, most often first ("on-demand 7, fixed peak 3").
func counts(m map[string]int) string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
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
