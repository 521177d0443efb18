package kcl

import (
	"testing"
	"time"
)

func TestPlanTakes(t *testing.T) {
	now := time.Now()
	const failover = 10 * time.Second
	fresh := func(keys ...string) map[string]observedCounter {
		m := map[string]observedCounter{}
		for _, k := range keys {
			m[k] = observedCounter{changedAt: now}
		}
		return m
	}
	owned := func(owners ...string) []Lease {
		var ls []Lease
		for i, o := range owners {
			ls = append(ls, Lease{Key: "shard-" + string(rune('a'+i)), Owner: o, Checkpoint: CheckpointTrimHorizon})
		}
		return ls
	}
	keys := func(ls []Lease) []string {
		var ks []string
		for _, l := range ls {
			ks = append(ks, l.Key)
		}
		return ks
	}
	tests := map[string]struct {
		leases   []Lease
		held     []string
		observed func([]Lease) map[string]observedCounter
		cooldown []string
		want     int    // leases to take
		wantFrom string // owner of the planned leases ("" = unowned), checked when want > 0
	}{
		"new leases: take my share": {leases: owned("", "", "", "", "", "", "", ""), want: 8},
		"balance with two peers": {
			leases: owned("b", "b", "b", "c", "c", "c", "", ""), want: 2, wantFrom: ""},
		"at target: nothing": {
			leases: owned("me", "me", "me", "b", "b", "b", "c", "c"), held: []string{"shard-a", "shard-b", "shard-c"}, want: 0},
		"steal one from the most loaded": {
			leases: owned("b", "b", "b", "b", "b", "b", "c", "c"), want: 1, wantFrom: "b"},
		"no steal when the busiest holds its share and I need one": {
			leases: owned("b", "b", "b", "c", "c", "c", "me", "me"), held: []string{"shard-g", "shard-h"}, want: 0},
		"expired leases are free": {
			leases: owned("dead", "dead", "dead", "dead"),
			observed: func(ls []Lease) map[string]observedCounter {
				m := map[string]observedCounter{}
				for _, l := range ls {
					m[l.Key] = observedCounter{changedAt: now.Add(-2 * failover)}
				}
				return m
			}, want: 4, wantFrom: "dead"},
		"cooling down leases are skipped":          {leases: owned("", ""), cooldown: []string{"shard-a"}, want: 1},
		"my own lease not held (restart) is taken": {leases: owned("me"), want: 1, wantFrom: "me"},
		"finished and blocked leases are not taken": {
			leases: []Lease{
				{Key: "parent", Checkpoint: "123"},
				{Key: "child", ParentShardIDs: []string{"parent"}, Checkpoint: CheckpointTrimHorizon},
				{Key: "done", Checkpoint: CheckpointShardEnd},
			}, want: 1, wantFrom: ""},
		"a child of a finished parent is taken": {
			leases: []Lease{
				{Key: "parent", Owner: "b", Checkpoint: CheckpointShardEnd},
				{Key: "child", ParentShardIDs: []string{"parent", "gone"}, Checkpoint: CheckpointTrimHorizon},
			}, want: 1, wantFrom: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			held := map[string]*heldLease{}
			for _, k := range tc.held {
				held[k] = &heldLease{}
			}
			obs := fresh(keys(tc.leases)...)
			if tc.observed != nil {
				obs = tc.observed(tc.leases)
			}
			cool := map[string]time.Time{}
			for _, k := range tc.cooldown {
				cool[k] = now.Add(time.Minute)
			}
			got := planTakes(tc.leases, "me", held, obs, cool, now, failover)
			if len(got) != tc.want {
				t.Fatalf("planned %v, want %d leases", keys(got), tc.want)
			}
			for _, l := range got {
				if tc.wantFrom != "" && l.Owner != tc.wantFrom || tc.wantFrom == "" && l.Owner != "" {
					t.Fatalf("planned %+v, want leases of %q", l, tc.wantFrom)
				}
				if held[l.Key] != nil {
					t.Fatalf("planned a lease already held: %s", l.Key)
				}
				if _, c := cool[l.Key]; c {
					t.Fatalf("planned a cooling-down lease: %s", l.Key)
				}
				if l.Key == "child" && name == "finished and blocked leases are not taken" {
					t.Fatal("planned a child whose parent has not ended")
				}
			}
		})
	}
}

func TestInitialCheckpoint(t *testing.T) {
	tests := map[string]struct {
		initial              string
		leasedParent, closed bool
		want                 string
	}{
		"trim horizon":                 {initial: CheckpointTrimHorizon, want: CheckpointTrimHorizon},
		"latest, open":                 {initial: CheckpointLatest, want: CheckpointLatest},
		"latest, closed: no lease":     {initial: CheckpointLatest, closed: true, want: ""},
		"child of a leased parent":     {initial: CheckpointLatest, leasedParent: true, want: CheckpointTrimHorizon},
		"at timestamp, closed":         {initial: CheckpointAtTimestamp, closed: true, want: CheckpointAtTimestamp},
		"child with at timestamp init": {initial: CheckpointAtTimestamp, leasedParent: true, want: CheckpointTrimHorizon},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := initialCheckpoint(tc.initial, tc.leasedParent, tc.closed); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	base := Config{StreamName: "s", LeaseTableName: "t", WorkerID: "w", NewProcessor: func() Processor { return &noopProcessor{} }}
	cfg, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FailoverTime != 10*time.Second || cfg.RenewInterval != cfg.FailoverTime/3 || cfg.TakeInterval != cfg.RenewInterval ||
		cfg.ReadMode != ReadModePolling || cfg.InitialPosition != CheckpointTrimHorizon || cfg.MaxRecordsPerCall != 10000 ||
		cfg.LeaseCleanupInterval != time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
	bad := map[string]func(*Config){
		"no stream":                func(c *Config) { c.StreamName = "" },
		"no table":                 func(c *Config) { c.LeaseTableName = "" },
		"no worker":                func(c *Config) { c.WorkerID = "" },
		"no processor":             func(c *Config) { c.NewProcessor = nil },
		"fan-out without arn":      func(c *Config) { c.ReadMode = ReadModeFanOut },
		"unknown mode":             func(c *Config) { c.ReadMode = "push" },
		"bad position":             func(c *Config) { c.InitialPosition = "OLDEST" },
		"timestamp missing":        func(c *Config) { c.InitialPosition = CheckpointAtTimestamp },
		"renew not under failover": func(c *Config) { c.RenewInterval = 20 * time.Second },
		"negative failover":        func(c *Config) { c.FailoverTime = -1 },
		"too many records":         func(c *Config) { c.MaxRecordsPerCall = 10001 },
		"resubscribe too late":     func(c *Config) { c.ResubscribeInterval = 5 * time.Minute },
		"negative clean-up":        func(c *Config) { c.LeaseCleanupInterval = -time.Second },
		"failover under 3 ns":      func(c *Config) { c.FailoverTime = 2 }, // no positive renewal period
	}
	for name, edit := range bad {
		t.Run(name, func(t *testing.T) {
			c := base
			edit(&c)
			if _, err := c.withDefaults(); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestRecordBuilderResumesInsideAggregate(t *testing.T) {
	raw := aggregatedRecords(t, []string{"1", "2"}, 5)
	tests := map[string]struct {
		afterSeq string
		afterSub int64
		want     int
	}{
		"everything":             {want: 10},
		"after record 1/2":       {afterSeq: "1", afterSub: 2, want: 7},
		"after the last of 1":    {afterSeq: "1", afterSub: 4, want: 5},
		"after everything":       {afterSeq: "2", afterSub: 4, want: 0},
		"checkpoint before both": {afterSeq: "0", afterSub: 9, want: 10},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := &recordBuilder{shardID: "s"}
			got, _ := b.build(raw, tc.afterSeq, tc.afterSub, nil)
			if len(got) != tc.want {
				t.Fatalf("%d records, want %d", len(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if compareExtended(got[i].SequenceNumber, got[i].SubSequenceNumber, got[i-1].SequenceNumber, got[i-1].SubSequenceNumber) <= 0 {
					t.Fatal("records out of order")
				}
			}
		})
	}
	// A corrupt aggregate is delivered whole and reported.
	bad := aggregatedRecords(t, []string{"3"}, 2)
	bad[0].Data[len(bad[0].Data)-1] ^= 0xff
	var reported []corruptRecord
	got, st := (&recordBuilder{}).build(bad, "", 0, func(c corruptRecord) { reported = append(reported, c) })
	if len(got) != 1 || st.corrupt != 1 || len(reported) != 1 || reported[0].sequenceNumber != "3" || len(got[0].Data) != len(bad[0].Data) {
		t.Fatalf("corrupt aggregate: %d records, stats %+v, reported %+v", len(got), st, reported)
	}
}
