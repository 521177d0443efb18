package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/envconfig"
)

func TestTrigger(t *testing.T) {
	tests := map[string]struct {
		event   string
		want    string
		wantErr bool
	}{
		"schedule": {
			event: `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2025-03-01T12:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/every-minute"],"detail":{}}`,
			want:  "schedule",
		},
		"throttling alarm": {
			event: `{"version":"0","id":"2","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch","detail":{"alarmName":"stream-throttling","state":{"value":"ALARM","reason":"Threshold Crossed"},"previousState":{"value":"OK"}}}`,
			want:  "alarm stream-throttling ALARM",
		},
		"other event":   {event: `{"source":"custom.ops","detail-type":"Resize"}`, want: "event custom.ops Resize"},
		"manual invoke": {event: `{}`, want: "manual"},
		"not an object": {event: `"scale please"`, wantErr: true},
		"not JSON":      {event: `{`, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := trigger(json.RawMessage(tc.event))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("trigger = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := map[string]struct {
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c scaler.Config)
	}{
		"stream only uses defaults": {
			env: map[string]string{scaler.EnvStreamName: "s"},
			check: func(t *testing.T, c scaler.Config) {
				if c.StreamName != "s" || !c.ShardLevelMetrics || c.DryRun || c.Policy.MaxShards != 0 {
					t.Errorf("got %+v", c)
				}
			},
		},
		"every setting": {
			env: map[string]string{
				scaler.EnvStreamName: "s", scaler.EnvMinShards: "2", scaler.EnvMaxShards: "40",
				scaler.EnvScaleUpUtilisation: "0.8", scaler.EnvScaleUpMinutes: "3", scaler.EnvTargetUtilisation: "0.6",
				scaler.EnvScarceCallsTargetUtilisation: "0.45", scaler.EnvScaleDownUtilisation: "0.3",
				scaler.EnvScaleDownMinutes: "20", scaler.EnvScaleDownCooldown: "45m",
				scaler.EnvScaleUpReserve: "4", scaler.EnvReshardDuration: "90s", scaler.EnvShardLevelMetrics: "false",
				scaler.EnvDryRun: "true",
			},
			check: func(t *testing.T, c scaler.Config) {
				p := c.Policy
				if p.MinShards != 2 || p.MaxShards != 40 || p.ScaleUpUtilisation != 0.8 || p.ScaleUpMinutes != 3 ||
					p.TargetUtilisation != 0.6 || p.ScarceCallsTargetUtilisation != 0.45 || p.ScaleDownUtilisation != 0.3 ||
					p.ScaleDownMinutes != 20 ||
					p.ScaleDownCooldown != 45*time.Minute || p.ScaleUpReserve != 4 || p.ReshardDuration != 90*time.Second ||
					c.ShardLevelMetrics || !c.DryRun {
					t.Errorf("got %+v", c)
				}
			},
		},
		"missing stream":       {env: map[string]string{}, wantErr: scaler.EnvStreamName + `="": required`},
		"bad integer":          {env: map[string]string{scaler.EnvStreamName: "s", scaler.EnvMaxShards: "many"}, wantErr: scaler.EnvMaxShards},
		"percent not fraction": {env: map[string]string{scaler.EnvStreamName: "s", scaler.EnvScaleUpUtilisation: "70"}, wantErr: scaler.EnvScaleUpUtilisation},
		"bad duration":         {env: map[string]string{scaler.EnvStreamName: "s", scaler.EnvScaleDownCooldown: "15"}, wantErr: scaler.EnvScaleDownCooldown},
		"bad bool":             {env: map[string]string{scaler.EnvStreamName: "s", scaler.EnvDryRun: "maybe"}, wantErr: scaler.EnvDryRun},
		"min above max":        {env: map[string]string{scaler.EnvStreamName: "s", scaler.EnvMinShards: "8", scaler.EnvMaxShards: "4"}, wantErr: "MaxShards is 4"},
		"two problems at once": {env: map[string]string{scaler.EnvMaxShards: "x"}, wantErr: scaler.EnvStreamName},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := configFromEnv(envconfig.Lookup(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

type fakeRunner struct {
	triggers []string
	now      time.Time
	err      error
}

func (f *fakeRunner) Run(_ context.Context, now time.Time, trigger string) (scaler.Outcome, error) {
	f.triggers = append(f.triggers, trigger)
	f.now = now
	return scaler.Outcome{}, f.err
}

type countingFlusher struct{ n int }

func (c *countingFlusher) Flush() error { c.n++; return nil }

func TestHandlerRunsOnceAndFlushesMetrics(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)
	errScale := errors.New("kinesis down")
	tests := map[string]struct {
		event       string
		runErr      error
		wantErr     error
		wantTrigger string
	}{
		"schedule":       {event: `{"source":"aws.events","detail-type":"Scheduled Event"}`, wantTrigger: "schedule"},
		"scaler failure": {event: `{}`, runErr: errScale, wantErr: errScale, wantTrigger: "manual"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, fl := &fakeRunner{err: tc.runErr}, &countingFlusher{}
			h := &handler{scaler: r, metrics: fl, now: func() time.Time { return at }}
			err := h.handle(context.Background(), json.RawMessage(tc.event))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(r.triggers) != 1 || r.triggers[0] != tc.wantTrigger || !r.now.Equal(at) || fl.n != 1 {
				t.Fatalf("runs %v at %v, flushes %d", r.triggers, r.now, fl.n)
			}
		})
	}
}
