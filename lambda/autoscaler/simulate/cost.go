package main

import "math"

// Prices are the list prices the cost model charges, in US dollars.
type Prices struct {
	// ShardHour is one provisioned shard for an hour.
	ShardHour float64
	// PutUnitsPerMillion is a million PUT payload units of a provisioned stream: a record counts one unit per
	// started 25 KiB.
	PutUnitsPerMillion float64
	// FanOutConsumerShardHour is one enhanced fan-out consumer on one provisioned shard for an hour.
	FanOutConsumerShardHour float64
	// FanOutGB is a GiB read by an enhanced fan-out consumer of a provisioned stream.
	FanOutGB float64
	// OnDemandStreamHour is one on-demand stream for an hour.
	OnDemandStreamHour float64
	// OnDemandInGB is a GiB written to an on-demand stream, each record rounded up to a whole KiB.
	OnDemandInGB float64
	// OnDemandOutGB is a GiB read with GetRecords from an on-demand stream, rounded the same way.
	OnDemandOutGB float64
	// OnDemandFanOutGB is a GiB read by an enhanced fan-out consumer of an on-demand stream, rounded the same way.
	OnDemandFanOutGB float64
}

// DefaultPrices are us-east-1 (N. Virginia) list prices of Kinesis Data Streams, On-demand Standard for the
// on-demand mode, from the pricing page https://aws.amazon.com/kinesis/data-streams/pricing/. The copy of that page
// this project could read (its document store, consulted on 2026-12-02) draws its price tables with a script and
// shows no figures, so the figures are the ones AWS states elsewhere, as of the date given:
//   - provisioned shard-hour $0.015 and PUT payload units $0.014 per million, as the page's provisioned table reads
//     (quoted from it in public notes); enhanced fan-out $0.015 per consumer-shard-hour and $0.013 per GiB;
//   - on-demand $0.04 per stream-hour, $0.08 per GiB written and $0.05 per GiB of enhanced fan-out reads, as AWS's
//     Big Data Blog post "Kinesis On-demand Advantage saves 60%+ on streaming costs" of 2026-03-09 gives them for
//     us-east-1;
//   - on-demand $0.04 per GiB of GetRecords reads, the list price this project knows; no dated page confirmed it.
//
// Every price is a flag of the simulate command: check them against the pricing page before relying on the result.
var DefaultPrices = Prices{
	ShardHour:               0.015,
	PutUnitsPerMillion:      0.014,
	FanOutConsumerShardHour: 0.015,
	FanOutGB:                0.013,
	OnDemandStreamHour:      0.04,
	OnDemandInGB:            0.08,
	OnDemandOutGB:           0.04,
	OnDemandFanOutGB:        0.05,
}

// Readers are the consumers reading everything written, which cost money in both modes.
type Readers struct {
	// FanOut is the number of enhanced fan-out consumers (the stack registers one).
	FanOut int
	// Polling is the number of GetRecords consumers (free on a provisioned stream, billed per GiB on-demand).
	Polling int
}

// Billing units.
const (
	gib          = 1 << 30
	kib          = 1 << 10
	putUnitBytes = 25 * kib
)

// Traffic is what a trace writes, the same whatever the capacity option: producers retry throttled records until
// they are taken, so every record is written and read once per consumer in the end.
type Traffic struct {
	// Hours is the trace's length.
	Hours float64
	// Records and Bytes are what is written.
	Records, Bytes float64
	// PutUnits are the provisioned PUT payload units: one per started 25 KiB of each record.
	PutUnits float64
	// BilledBytes are what on-demand bills per GiB, in and out: each record rounded up to a whole KiB.
	BilledBytes float64
}

// trafficOf sums tr's demand (with the noise of set's seed) into its Traffic.
func trafficOf(tr Trace, set Settings) Traffic {
	set = set.withDefaults()
	perUnitMinute := unitBytes(tr.RecordSize) * 60
	units := 0.0
	for t := range minuteTime(tr.Minutes) {
		units += tr.load(t, set.Seed).Total()
	}
	bytes := units * perUnitMinute
	records := bytes / tr.RecordSize
	return Traffic{
		Hours:       float64(tr.Minutes) / 60,
		Records:     records,
		Bytes:       bytes,
		PutUnits:    records * math.Ceil(tr.RecordSize/putUnitBytes),
		BilledBytes: records * math.Ceil(tr.RecordSize/kib) * kib,
	}
}

// provisionedDollars is what a provisioned stream costs for shardHours carrying tf and read by r.
func provisionedDollars(p Prices, shardHours float64, tf Traffic, r Readers) float64 {
	fanOut := float64(r.FanOut)
	return shardHours*p.ShardHour + tf.PutUnits/1e6*p.PutUnitsPerMillion +
		fanOut*(shardHours*p.FanOutConsumerShardHour+tf.Bytes/gib*p.FanOutGB)
}

// onDemandDollars is what an on-demand stream costs carrying tf and read by r.
func onDemandDollars(p Prices, tf Traffic, r Readers) float64 {
	perGiB := p.OnDemandInGB + float64(r.Polling)*p.OnDemandOutGB + float64(r.FanOut)*p.OnDemandFanOutGB
	return tf.Hours*p.OnDemandStreamHour + tf.BilledBytes/gib*perGiB
}

// On-demand capacity, from the Kinesis Data Streams developer guide ("Choose the data stream capacity mode"): a new
// on-demand stream takes 4 MB/s and 4,000 records/s (4 shard-units), and a stream "accommodates up to double the
// previous peak write throughput observed in the previous 30 days"; traffic that more than doubles that peak within
// 15 minutes may be throttled.
const (
	onDemandInitialUnits = 4
	onDemandCatchUp      = 15 // minutes
)

// onDemandThrottledMinutes counts the minutes an on-demand stream throttles on tr: its capacity is the larger of
// onDemandInitialUnits and twice the highest minute written more than onDemandCatchUp minutes before. The previous
// peak starts at the trace's own highest minute when the trace repeats every day (the 30 days remember it), and at
// its first minute otherwise (a one-off event on a stream that ran at its base load before). A partition key above
// one shard's limit would throttle in either mode; no trace has one.
func onDemandThrottledMinutes(tr Trace, set Settings) int {
	set = set.withDefaults()
	loads := make([]float64, tr.Minutes)
	for t := range loads {
		loads[t] = tr.load(minuteTime(t), set.Seed).Total()
	}
	peak := loads[0]
	if tr.Daily {
		peak = max(peak, maxOf(loads))
	}
	throttled := 0
	for t, l := range loads {
		if t >= onDemandCatchUp {
			peak = max(peak, loads[t-onDemandCatchUp])
		}
		if l > max(onDemandInitialUnits, 2*peak)+1e-9 {
			throttled++
		}
	}
	return throttled
}

// fixedPeakShards is the fewest uniform shards on which tr never throttles: each minute's load spread over them,
// the shard holding a hot key carrying that key too.
func fixedPeakShards(tr Trace, set Settings) int {
	set = set.withDefaults()
	n := 1
	for t := range minuteTime(tr.Minutes) {
		l := tr.load(t, set.Seed)
		n = max(n, roundUp(l.Total()))
		if l.HotKey > 0 && l.HotKey < 1 {
			n = max(n, roundUp(l.Uniform/(1-l.HotKey)))
		}
	}
	return n
}

// Option is how one capacity option did on a trace.
type Option struct {
	// Name names the option in the printed table.
	Name string
	// ThrottledMinutes counts the minutes in which some writes were refused.
	ThrottledMinutes int
	// ShardHours is what a provisioned option paid shards for; 0 on-demand.
	ShardHours float64
	// Calls are UpdateShardCount calls (splits and merges not counted).
	Calls int
	// Dollars is what the option cost over the trace.
	Dollars float64
}

// Names of the options.
const (
	OptionAutoscaler   = "autoscaler"
	OptionScalingUtils = "scaling utils"
	OptionFixedPeak    = "fixed peak"
	OptionOnDemand     = "on-demand"
)

// options prices the four capacity options of a trace whose provisioned controllers did pol and su.
func options(tr Trace, set Settings, pol, su Result) []Option {
	set = set.withDefaults()
	tf := trafficOf(tr, set)
	fixed := fixedPeakShards(tr, set)
	fixedHours := float64(fixed) * tf.Hours
	return []Option{
		{Name: OptionAutoscaler, ThrottledMinutes: pol.ThrottledMinutes, ShardHours: pol.ShardHours, Calls: pol.UpdateCalls,
			Dollars: provisionedDollars(set.Prices, pol.ShardHours, tf, set.Readers)},
		{Name: OptionScalingUtils, ThrottledMinutes: su.ThrottledMinutes, ShardHours: su.ShardHours, Calls: su.UpdateCalls,
			Dollars: provisionedDollars(set.Prices, su.ShardHours, tf, set.Readers)},
		{Name: OptionFixedPeak, ShardHours: fixedHours, Dollars: provisionedDollars(set.Prices, fixedHours, tf, set.Readers)},
		{Name: OptionOnDemand, ThrottledMinutes: onDemandThrottledMinutes(tr, set), Dollars: onDemandDollars(set.Prices, tf, set.Readers)},
	}
}

// cheapest returns the name of the cheapest option that never throttled ("" when every one did).
func cheapest(opts []Option) string {
	best := -1
	for i, o := range opts {
		if o.ThrottledMinutes == 0 && (best < 0 || o.Dollars < opts[best].Dollars) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return opts[best].Name
}

func maxOf(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
