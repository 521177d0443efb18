package main

import (
	"math"
	"testing"
)

// flat is a trace of the given length whose load is f(t) shard-units, without a hot key.
func flat(minutes int, recordSize float64, daily bool, f func(t int) float64) Trace {
	return Trace{Name: "test", Minutes: minutes, RecordSize: recordSize, StartShards: 1, Daily: daily,
		Load: func(t minuteTime) Load { return Load{Uniform: f(int(t))} }}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

// step is a load of before shard-units for the first hour and after from then on.
func step(before, after float64) func(t int) float64 {
	return func(t int) float64 {
		if t < 60 {
			return before
		}
		return after
	}
}

func TestTrafficCountsBillingUnits(t *testing.T) {
	tests := map[string]struct {
		recordSize          float64
		wantUnitBytes       float64 // bytes per second of one shard-unit
		wantPutUnitsPerRec  float64
		wantBilledPerRecord float64
	}{
		"100 B records: the record limit binds, on-demand bills 1 KiB each": {100, 100_000, 1, 1024},
		"1 KiB records: 1000 of them are just under 1 MiB":                  {1024, 1_024_000, 1, 1024},
		"25 KiB records fill one PUT unit":                                  {25 * 1024, 1 << 20, 1, 25 * 1024},
		"30 KiB records take two PUT units":                                 {30 * 1024, 1 << 20, 2, 30 * 1024},
		"a record of 1025 bytes is billed as 2 KiB":                         {1025, 1_025_000, 1, 2048},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN an hour at one shard-unit, without noise
			tr := flat(60, tc.recordSize, false, func(int) float64 { return 1 })
			tf := trafficOf(tr, Settings{})
			units := 0.0
			for m := range minuteTime(60) {
				units += tr.load(m, 1).Total()
			}
			// THEN bytes, records, PUT units and billed bytes follow from the record size
			if got := unitBytes(tc.recordSize); got != tc.wantUnitBytes {
				t.Fatalf("unitBytes = %v, want %v", got, tc.wantUnitBytes)
			}
			wantBytes := units * tc.wantUnitBytes * 60
			wantRecords := wantBytes / tc.recordSize
			if !near(tf.Bytes, wantBytes) || !near(tf.Records, wantRecords) || tf.Hours != 1 {
				t.Errorf("traffic %+v, want %.0f bytes in %.0f records over 1 hour", tf, wantBytes, wantRecords)
			}
			if !near(tf.PutUnits, wantRecords*tc.wantPutUnitsPerRec) || !near(tf.BilledBytes, wantRecords*tc.wantBilledPerRecord) {
				t.Errorf("PUT units %.0f and billed bytes %.0f, want %.0f and %.0f", tf.PutUnits, tf.BilledBytes,
					wantRecords*tc.wantPutUnitsPerRec, wantRecords*tc.wantBilledPerRecord)
			}
		})
	}
}

func TestDollars(t *testing.T) {
	// One GiB written in 1 KiB records over 10 hours: 2^20 records and PUT units.
	tf := Traffic{Hours: 10, Records: 1 << 20, Bytes: gib, PutUnits: 1 << 20, BilledBytes: gib}
	p := DefaultPrices
	tests := map[string]struct {
		got, want float64
	}{
		"provisioned, no consumer": {
			provisionedDollars(p, 20, tf, Readers{}), 20*0.015 + 1.048576*0.014,
		},
		"provisioned, two fan-out consumers pay per shard-hour and GiB": {
			provisionedDollars(p, 20, tf, Readers{FanOut: 2}), 20*0.015 + 1.048576*0.014 + 2*(20*0.015+1*0.013),
		},
		"provisioned polling consumers are free": {
			provisionedDollars(p, 20, tf, Readers{Polling: 3}), 20*0.015 + 1.048576*0.014,
		},
		"on-demand, one fan-out and one polling consumer": {
			onDemandDollars(p, tf, Readers{FanOut: 1, Polling: 1}), 10*0.04 + 1*(0.08+0.04+0.05),
		},
		"on-demand bills the rounded bytes": {
			onDemandDollars(p, Traffic{Hours: 1, BilledBytes: 10 * gib, Bytes: gib}, Readers{}), 0.04 + 10*0.08,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if !near(tc.got, tc.want) {
				t.Fatalf("%.6f USD, want %.6f", tc.got, tc.want)
			}
		})
	}
}

func TestOnDemandThrottledMinutes(t *testing.T) {
	tests := map[string]struct {
		trace Trace
		want  int
	}{
		"steady load never throttles":        {flat(120, 2048, false, func(int) float64 { return 3 }), 0},
		"a new stream takes 4 MiB/s at once": {flat(120, 2048, false, step(0.5, 3.8)), 0},
		// 3 -> 10 at minute 60: capacity 6 until the minute-60 peak counts, from minute 75.
		"a one-off jump beyond twice the base throttles until 15 minutes after it": {flat(120, 2048, false, step(3, 10)), 15},
		"a jump within twice the base does not throttle":                           {flat(120, 2048, false, step(3, 5.9)), 0},
		"a daily trace's burst is remembered from the days before":                 {flat(120, 2048, true, step(3, 10)), 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := onDemandThrottledMinutes(tc.trace, Settings{}); got != tc.want {
				t.Fatalf("%d throttled minutes, want %d", got, tc.want)
			}
		})
	}
}

func TestFixedPeakShards(t *testing.T) {
	tests := map[string]struct {
		trace      Trace
		wantShards int
	}{
		// 3.5 with up to 3 % noise needs 4 shards whatever the seed.
		"the highest minute, noise included": {flat(60, 2048, false, func(int) float64 { return 3.5 }), 4},
		"the shard holding a hot key must carry it with its share of the rest": {
			// 2 shard-units spread evenly and one key at 0.65: each of n shards carries 2/n, so n >= 2/0.35.
			Trace{Minutes: 60, RecordSize: 2048, Load: func(minuteTime) Load { return Load{Uniform: 2, HotKey: 0.65, HotKeyAt: 0.3} }}, 6,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// WHEN the fixed size is worked out
			got := fixedPeakShards(tc.trace, Settings{})
			if got != tc.wantShards {
				t.Fatalf("%d shards, want %d", got, tc.wantShards)
			}
			// THEN the stream model confirms that many uniform shards never throttle, and one fewer does
			for n, wantThrottled := range map[int]bool{got: false, got - 1: true} {
				m := NewStreamModel(n, 4, 1)
				throttled := false
				for t := range minuteTime(tc.trace.Minutes) {
					throttled = throttled || m.Serve(t, tc.trace.load(t, 1), tc.trace.RecordSize).throttled
				}
				if throttled != wantThrottled {
					t.Errorf("%d uniform shards throttled %v, want %v", n, throttled, wantThrottled)
				}
			}
		})
	}
}

func TestCheapestWithoutThrottling(t *testing.T) {
	tests := map[string]struct {
		opts []Option
		want string
	}{
		"the cheapest that never throttled": {
			opts: []Option{{Name: "a", Dollars: 1, ThrottledMinutes: 3}, {Name: "b", Dollars: 2}, {Name: "c", Dollars: 1.5}},
			want: "c",
		},
		"none when every option throttled": {
			opts: []Option{{Name: "a", Dollars: 1, ThrottledMinutes: 3}, {Name: "b", Dollars: 2, ThrottledMinutes: 1}},
			want: "",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := cheapest(tc.opts); got != tc.want {
				t.Fatalf("cheapest = %q, want %q", got, tc.want)
			}
		})
	}
}
