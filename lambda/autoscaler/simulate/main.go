// Command simulate replays load traces through the shard autoscaler's policy and through a model of
// amazon-kinesis-scaling-utils with the blog's settings, on a model of a Kinesis stream (per-shard capacity,
// resharding delay, one resharding at a time, UpdateShardCount within [n/2, 2n] and 10 calls per rolling 24 h,
// CloudWatch publication latency and lost datapoints), and prints throttled minutes, shard-hours and scaling calls
// next to the shard-hours of a per-minute oracle.
//
//	go run ./lambda/autoscaler/simulate
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
	actions := flag.Bool("actions", false, "print every action of this policy, trace by trace")
	flag.Parse()
	if err := run(os.Stdout, set, *actions); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, set Settings, actions bool) error {
	p, err := policy.New(policy.Config{MinShards: 1, MaxShards: 16})
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
	return printTable(w, rows, p.Config())
}

func printTable(w io.Writer, rows []Row, cfg policy.Config) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\tthrottled min\t\tshard-hours\t\t\t\tUpdateShardCount calls (max in 24 h)\t\tsplits+merges\t")
	fmt.Fprintln(tw, "\tpolicy\tSU\tpolicy\tSU\toracle\toracle@70%\tpolicy\tSU (refused)\tpolicy\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d (%d)\t%d (%d) (%d)\t%d\t\n", r.Trace,
			r.Policy.ThrottledMinutes, r.ScalingUtils.ThrottledMinutes,
			r.Policy.ShardHours, r.ScalingUtils.ShardHours, r.Oracle, r.OracleAtScaleUp,
			r.Policy.UpdateCalls, r.Policy.MaxCallsIn24h, r.ScalingUtils.UpdateCalls, r.ScalingUtils.MaxCallsIn24h, r.SURefused,
			r.Policy.SplitsMerges)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\tfewer throttled min than SU\tpolicy/oracle\tpolicy/oracle@70%\t<= 10 calls in 24 h\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%v\t%.2f\t%.2f\t%v\t\n", r.Trace,
			r.Policy.ThrottledMinutes < r.ScalingUtils.ThrottledMinutes,
			r.Policy.ShardHours/r.Oracle, r.Policy.ShardHours/r.OracleAtScaleUp, r.Policy.MaxCallsIn24h <= 10)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\noracle: fewest shards carrying each minute at 100%% of capacity; oracle@70%%: the same at the %.0f%% scale-up threshold.\n", 100*cfg.ScaleUpUtilisation)
	return err
}
