package kcl

import (
	"testing"
	"time"
)

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
