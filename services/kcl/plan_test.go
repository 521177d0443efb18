package kcl

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// ownedLeases returns one lease per owner ("" for none), keyed shard-a, shard-b, ...
func ownedLeases(owners ...string) []Lease {
	var ls []Lease
	for i, o := range owners {
		ls = append(ls, Lease{Key: "shard-" + string(rune('a'+i)), Owner: o, Checkpoint: CheckpointTrimHorizon})
	}
	return ls
}

func leaseKeys(ls []Lease) []string {
	var ks []string
	for _, l := range ls {
		ks = append(ks, l.Key)
	}
	return ks
}

// seededRandom returns the same choices in every run.
func seededRandom() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func TestPlanTakes(t *testing.T) {
	now := time.Now()
	const failover = 10 * time.Second
	tests := map[string]struct {
		leases   []Lease
		held     []string
		stale    bool // every counter last changed two failover times ago
		cooldown []string
		want     int    // leases to take
		wantFrom string // owner of the planned leases ("" = unowned), checked when want > 0
		notChild bool   // the lease "child" must not be planned
	}{
		"new leases: take my share": {leases: ownedLeases("", "", "", "", "", "", "", ""), want: 8},
		"balance with two peers": {
			leases: ownedLeases("b", "b", "b", "c", "c", "c", "", ""), want: 2, wantFrom: ""},
		"at target: nothing": {
			leases: ownedLeases("me", "me", "me", "b", "b", "b", "c", "c"), held: []string{"shard-a", "shard-b", "shard-c"}, want: 0},
		"steal one from the most loaded": {
			leases: ownedLeases("b", "b", "b", "b", "b", "b", "c", "c"), want: 1, wantFrom: "b"},
		"no steal when the busiest holds its share and I need one": {
			leases: ownedLeases("b", "b", "b", "c", "c", "c", "me", "me"), held: []string{"shard-g", "shard-h"}, want: 0},
		"expired leases are free": {
			leases: ownedLeases("dead", "dead", "dead", "dead"), stale: true, want: 4, wantFrom: "dead"},
		"cooling down leases are skipped":          {leases: ownedLeases("", ""), cooldown: []string{"shard-a"}, want: 1},
		"my own lease not held (restart) is taken": {leases: ownedLeases("me"), want: 1, wantFrom: "me"},
		"finished and blocked leases are not taken": {
			leases: []Lease{
				{Key: "parent", Checkpoint: "123"},
				{Key: "child", ParentShardIDs: []string{"parent"}, Checkpoint: CheckpointTrimHorizon},
				{Key: "done", Checkpoint: CheckpointShardEnd},
			}, want: 1, wantFrom: "", notChild: true},
		"a child of a finished parent is taken": {
			leases: []Lease{
				{Key: "parent", Owner: "b", Checkpoint: CheckpointShardEnd},
				{Key: "child", ParentShardIDs: []string{"parent", "gone"}, Checkpoint: CheckpointTrimHorizon},
			}, want: 1, wantFrom: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN the leases as listed and this worker's view of them
			v := takeView{me: "me", held: map[string]*heldLease{}, observed: map[string]observedCounter{},
				cooldown: map[string]time.Time{}, now: now, failover: failover}
			for _, k := range tc.held {
				v.held[k] = &heldLease{}
			}
			for _, l := range tc.leases {
				v.observed[l.Key] = observedCounter{changedAt: now}
				if tc.stale {
					v.observed[l.Key] = observedCounter{changedAt: now.Add(-2 * failover)}
				}
			}
			for _, k := range tc.cooldown {
				v.cooldown[k] = now.Add(time.Minute)
			}
			// WHEN the take pass plans, twice with the same random source
			v.random = seededRandom()
			got := planTakes(tc.leases, v)
			v.random = seededRandom()
			again := planTakes(tc.leases, v)
			// THEN it plans the wanted number of leases, of the wanted owner, and the same both times (it is pure)
			if !slices.Equal(leaseKeys(got), leaseKeys(again)) {
				t.Fatalf("planned %v, then %v with the same random source", leaseKeys(got), leaseKeys(again))
			}
			checkPlan(t, got, v, tc.want, tc.wantFrom)
			if tc.notChild && slices.Contains(leaseKeys(got), "child") {
				t.Fatal("planned a child whose parent has not ended")
			}
		})
	}
}

// checkPlan fails unless plan holds want leases of owner wantFrom ("" = unowned), none held or cooling down.
func checkPlan(t *testing.T, plan []Lease, v takeView, want int, wantFrom string) {
	t.Helper()
	if len(plan) != want {
		t.Fatalf("planned %v, want %d leases", leaseKeys(plan), want)
	}
	for _, l := range plan {
		if l.Owner != wantFrom {
			t.Fatalf("planned %+v, want leases of %q", l, wantFrom)
		}
		if v.held[l.Key] != nil {
			t.Fatalf("planned a lease already held: %s", l.Key)
		}
		if v.coolingDown(l.Key) {
			t.Fatalf("planned a cooling-down lease: %s", l.Key)
		}
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
