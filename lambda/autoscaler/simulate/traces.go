package main

import (
	"math"
)

// Trace is a load pattern replayed minute by minute.
type Trace struct {
	// Name names the trace in the printed table.
	Name string
	// Minutes is the trace's length in minutes.
	Minutes int
	// RecordSize is the size in bytes of the records the stream receives (after any aggregation by the producer).
	// Above 1,048 bytes a shard's limit of 1 MiB/s binds first, below it its limit of 1000 records/s.
	RecordSize float64
	// StartShards is the shard count both controllers start with: the base load at 60 % of capacity.
	StartShards int
	// Daily is true when the trace is a day that repeats: an on-demand stream then remembers its peak (it keeps
	// capacity for twice the peak of the last 30 days).
	Daily bool
	// Load is the demand of minute t before noise.
	Load func(t minuteTime) Load
}

// load is the trace's demand at t with a deterministic ±3 % wobble on the uniform part.
func (tr Trace) load(t minuteTime, seed uint64) Load {
	l := tr.Load(t)
	l.Uniform *= 1 + noise(seed, t, 0.03)
	return l
}

func startShards(base float64) int { return min(16, max(1, roundUp(base/0.6))) }

// Traces are the load patterns the issues ask for. Loads are in shard-units (1.0 = one shard's write limit: 1 MiB/s
// with the 2 KiB records of the first six); every trace starts with an hour at its base load so both controllers
// settle first.
func Traces() []Trace {
	const hour = 60
	uniform := func(f func(t minuteTime) float64) func(t minuteTime) Load {
		return func(t minuteTime) Load { return Load{Uniform: f(t)} }
	}
	return []Trace{
		{
			Name: "2x step", Minutes: 6 * hour, RecordSize: 2048, StartShards: startShards(3),
			Load: uniform(func(t minuteTime) float64 {
				if t < hour {
					return 3
				}
				return 6
			}),
		},
		{
			Name: "10x ramp over 1h", Minutes: 6 * hour, RecordSize: 2048, StartShards: startShards(1),
			Load: uniform(func(t minuteTime) float64 {
				switch {
				case t < hour:
					return 1
				case t < 2*hour:
					return 1 + 9*float64(t-hour)/hour
				default:
					return 10
				}
			}),
		},
		{
			Name: "diurnal day", Minutes: 24 * hour, RecordSize: 2048, StartShards: startShards(1),
			// 1 MiB/s at 02:00, 6 MiB/s at 14:00.
			Load: uniform(func(t minuteTime) float64 {
				phase := 2 * math.Pi * float64(t-2*hour) / (24 * hour)
				return 1 + 5*(1-math.Cos(phase))/2
			}),
		},
		{
			Name: "5x spike for 5 min", Minutes: 4 * hour, RecordSize: 2048, StartShards: startShards(2),
			Load: uniform(func(t minuteTime) float64 {
				if t >= 2*hour && t < 2*hour+5 {
					return 10
				}
				return 2
			}),
		},
		{
			Name: "slow decay", Minutes: 8 * hour, RecordSize: 2048, StartShards: startShards(9),
			// 9 MiB/s falling to about 1 MiB/s over 7 hours.
			Load: uniform(func(t minuteTime) float64 {
				if t < hour {
					return 9
				}
				return 9 * math.Exp(-float64(t-hour)/(3.2*hour))
			}),
		},
		{
			Name: "one hot key", Minutes: 4 * hour, RecordSize: 2048, StartShards: startShards(2),
			// 2 MiB/s over many keys, then one key adds 0.65 MiB/s: its shard needs 1.15 MiB/s while the
			// stream stays at 66 %.
			Load: func(t minuteTime) Load {
				l := Load{Uniform: 2}
				if t >= hour {
					l.HotKey, l.HotKeyAt = 0.65, 0.3
				}
				return l
			},
		},
		burstyDay("bursty day, 100 B records", 100),
		burstyDay("bursty day, 1 KB records", 1024),
		burstyDay("bursty day, 25 KB records", 25*1024),
	}
}

// burstyDay is a day of the same bytes written in records of recordSize bytes, which repeats every day: 0.02 MiB/s
// at night, rising to 0.2 MiB/s from 07:00 to 09:00 and falling back from 17:00 to 19:00, with two 10-minute bursts
// to 1.5 MiB/s at 11:00 and 15:00 (a batch job, a newsletter). Small records reach a shard's limit of 1000
// records/s before its 1 MiB/s; on-demand bills each record as a whole KiB.
func burstyDay(name string, recordSize float64) Trace {
	const hour = 60
	units := float64(1<<20) / unitBytes(recordSize) // shard-units per MiB/s
	mibps := func(t minuteTime) float64 {
		switch h := float64(t) / hour; {
		case (t >= 11*hour && t < 11*hour+10) || (t >= 15*hour && t < 15*hour+10):
			return 1.5
		case h < 7:
			return 0.02
		case h < 9:
			return 0.02 + 0.18*(h-7)/2
		case h < 17:
			return 0.2
		case h < 19:
			return 0.2 - 0.18*(h-17)/2
		default:
			return 0.02
		}
	}
	return Trace{
		Name: name, Minutes: 24 * hour, RecordSize: recordSize, StartShards: startShards(0.02 * units), Daily: true,
		Load: func(t minuteTime) Load { return Load{Uniform: mibps(t) * units} },
	}
}
