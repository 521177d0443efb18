package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/telemetry"
)

// testEmulators are kinesis-local (with quick resharding) and moto_server, started once for the package by the first
// test that needs them.
var testEmulators = &emulator.Shared{Options: emulator.Options{
	Kinesis: true, CloudWatch: true,
	KinesisEnv: []string{"UPDATE_SHARD_COUNT_DURATION=300ms", "SPLIT_SHARD_DURATION=300ms", "MERGE_SHARDS_DURATION=300ms", "CREATE_STREAM_DURATION=300ms"},
}}

var uniqueCounter atomic.Int64

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, uniqueCounter.Add(1))
}

func TestMain(m *testing.M) { os.Exit(testEmulators.Run(m)) }

// clock is the injected decision time of a test: real time an hour back, so every datapoint is in the past
// for moto, and advanced by hand.
type clock struct{ now time.Time }

func newClock() *clock {
	return &clock{now: time.Now().UTC().Truncate(time.Minute).Add(-time.Hour + 30*time.Second)}
}

// minute returns the start of the minute k minutes before the newest complete one.
func (c *clock) minute(k int) time.Time {
	return c.now.Truncate(time.Minute).Add(-time.Duration(k+1) * time.Minute)
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	name   string
	kin    *kinesis.Client
	cw     *cloudwatch.Client
	clock  *clock
	logs   *telemetry.SyncBuffer
	scaler *Scaler
}

func newFixture(t *testing.T, shards int, cfg Config) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	emu := testEmulators.Get(t)
	f := &fixture{t: t, ctx: ctx, name: uniqueName("autoscale"), kin: emu.KinesisClient(), cw: emu.CloudWatchClient(), clock: newClock(), logs: &telemetry.SyncBuffer{}}
	if _, err := f.kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(f.name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	f.waitActive()
	cfg.StreamName = f.name
	f.scaler = f.newScaler(cfg)
	return f
}

func (f *fixture) newScaler(cfg Config) *Scaler {
	f.t.Helper()
	cfg.StreamName = f.name
	s, err := New(cfg, f.kin, f.cw, telemetry.NewLogger(f.logs, -4), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) waitActive() {
	f.t.Helper()
	for {
		out, err := f.kin.DescribeStreamSummary(f.ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(f.name)})
		if err != nil {
			f.t.Fatalf("describe stream: %v", err)
		}
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-f.ctx.Done():
			f.t.Fatalf("stream %s not ACTIVE in time", f.name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (f *fixture) openShards() []types.Shard {
	f.t.Helper()
	out, err := f.kin.ListShards(f.ctx, &kinesis.ListShardsInput{StreamName: aws.String(f.name), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		f.t.Fatalf("list shards: %v", err)
	}
	var open []types.Shard
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	return open
}

// put writes Kinesis-style per-minute sums: utilisation u of one shard's byte limit times shards, with 2 KiB
// records, and throttled records. shard "" writes the stream-level metrics.
func (f *fixture) put(shard string, minute time.Time, u float64, shards int, throttled float64) {
	f.t.Helper()
	dims := []cwtypes.Dimension{{Name: aws.String("StreamName"), Value: aws.String(f.name)}}
	if shard != "" {
		dims = append(dims, cwtypes.Dimension{Name: aws.String("ShardId"), Value: aws.String(shard)})
	}
	bytes := u * float64(shards) * policy.WriteBytesPerShard * 60
	datum := func(name string, v float64, unit cwtypes.StandardUnit) cwtypes.MetricDatum {
		return cwtypes.MetricDatum{MetricName: aws.String(name), Dimensions: dims, Timestamp: aws.Time(minute), Value: aws.Float64(v), Unit: unit}
	}
	data := []cwtypes.MetricDatum{
		datum("IncomingBytes", bytes, cwtypes.StandardUnitBytes),
		datum("IncomingRecords", bytes/2048, cwtypes.StandardUnitCount),
		datum("WriteProvisionedThroughputExceeded", throttled, cwtypes.StandardUnitCount),
	}
	if shard == "" {
		data = append(data, datum("GetRecords.Bytes", bytes, cwtypes.StandardUnitBytes))
	}
	if _, err := f.cw.PutMetricData(f.ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(kinesisNamespace), MetricData: data}); err != nil {
		f.t.Fatalf("put metric data: %v", err)
	}
}

// putMinutes writes stream-level minutes k..0 (k minutes back to the newest) at utilisation u.
func (f *fixture) putMinutes(from, to int, u float64, shards int) {
	for k := from; k >= to; k-- {
		f.put("", f.clock.minute(k), u, shards, 0)
	}
}

func (f *fixture) run() Outcome {
	f.t.Helper()
	out, err := f.scaler.Run(f.ctx, f.clock.now, "test")
	if err != nil {
		f.t.Fatalf("run: %v", err)
	}
	return out
}

func (f *fixture) tags() map[string]string {
	f.t.Helper()
	out, err := f.kin.ListTagsForStream(f.ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String(f.name)})
	if err != nil {
		f.t.Fatalf("list tags: %v", err)
	}
	m := map[string]string{}
	for _, t := range out.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func TestLoadStepScalesUpOnTheNextInvocation(t *testing.T) {
	f := newFixture(t, 2, Config{})
	f.putMinutes(10, 0, 0.5, 2)
	if out := f.run(); out.Action != policy.ActionNone || out.Rule != policy.RuleSteady {
		t.Fatalf("steady load: got %s/%s (%s)", out.Action, out.Rule, out.Reason)
	}

	// The load doubles; the next invocation (one minute later, the step's minutes published) scales up.
	f.clock.now = f.clock.now.Add(2 * time.Minute)
	f.putMinutes(1, 0, 1.0, 2)
	out := f.run()
	if out.Action != policy.ActionUpdateShardCount || !out.Executed || out.TargetShardCount != 4 {
		t.Fatalf("after the step: got %+v", out)
	}
	f.waitActive()
	if n := len(f.openShards()); n != 4 {
		t.Fatalf("open shards = %d, want 4", n)
	}
	h, err := DecodeHistory(f.tags())
	if err != nil || len(h.UpdateShardCountCalls) != 1 || h.LastActionKind != policy.ActionUpdateShardCount {
		t.Fatalf("history after scale-up: %+v, %v", h, err)
	}

	// A new Scaler (a cold start) reads the call from the tags and marks the action settled.
	f.clock.now = f.clock.now.Add(time.Minute)
	f.scaler = f.newScaler(Config{})
	out = f.run()
	if out.UpdateCallsUsed != 1 {
		t.Fatalf("after a cold start the scaler counts %d calls, want 1", out.UpdateCallsUsed)
	}
	if h, _ := DecodeHistory(f.tags()); h.Settled.IsZero() {
		t.Fatalf("history not marked settled: %+v", h)
	}

	var line map[string]any
	logs := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
	if err := json.Unmarshal([]byte(logs[1]), &line); err != nil {
		t.Fatalf("decision log is not one JSON line: %q", logs[1])
	}
	if line["stream"] != f.name || line["action"] != "UpdateShardCount" || line["target_shard_count"] != 4.0 || line["executed"] != true {
		t.Fatalf("decision log line: %v", line)
	}
}

func TestQuietPeriodScalesDownOnlyAfterTheHoldTime(t *testing.T) {
	f := newFixture(t, 4, Config{})
	f.putMinutes(9, 0, 0.1, 4)
	out := f.run()
	if out.Action != policy.ActionNone || out.Rule != policy.RuleNotEnoughData {
		t.Fatalf("after 10 quiet minutes: got %s/%s (%s)", out.Action, out.Rule, out.Reason)
	}
	for range 4 {
		f.clock.now = f.clock.now.Add(time.Minute)
		f.put("", f.clock.minute(0), 0.1, 4, 0)
		if out := f.run(); out.Action != policy.ActionNone {
			t.Fatalf("scaled down before the hold time: %+v", out)
		}
	}
	f.clock.now = f.clock.now.Add(time.Minute)
	f.put("", f.clock.minute(0), 0.1, 4, 0)
	out = f.run()
	if out.Action != policy.ActionUpdateShardCount || out.Rule != policy.RuleScaleDown || !out.Executed || out.TargetShardCount != 2 {
		t.Fatalf("after 15 quiet minutes: got %+v", out)
	}
	f.waitActive()
	if n := len(f.openShards()); n != 2 {
		t.Fatalf("open shards = %d, want 2", n)
	}
}

func TestHotShardIsSplitAtItsMidpoint(t *testing.T) {
	f := newFixture(t, 2, Config{ShardLevelMetrics: true})
	shards := f.openShards()
	hot := shards[1]
	for k := 3; k >= 0; k-- {
		f.put("", f.clock.minute(k), 0.55, 2, 200)
		f.put(aws.ToString(shards[0].ShardId), f.clock.minute(k), 0.1, 1, 0)
		f.put(aws.ToString(hot.ShardId), f.clock.minute(k), 1.0, 1, 200)
	}
	out := f.run()
	if out.Action != policy.ActionSplitShard || !out.Executed || out.ShardID != aws.ToString(hot.ShardId) {
		t.Fatalf("got %+v, want split of %s", out, aws.ToString(hot.ShardId))
	}
	f.waitActive()
	open := f.openShards()
	if len(open) != 3 {
		t.Fatalf("open shards = %d, want 3", len(open))
	}
	start, _ := new(big.Int).SetString(aws.ToString(hot.HashKeyRange.StartingHashKey), 10)
	end, _ := new(big.Int).SetString(aws.ToString(hot.HashKeyRange.EndingHashKey), 10)
	mid := policy.Midpoint(start, end).String()
	found := false
	for _, s := range open {
		found = found || aws.ToString(s.HashKeyRange.StartingHashKey) == mid
	}
	if !found {
		t.Fatalf("no child shard starts at the midpoint %s: %+v", mid, open)
	}
}

func TestAdjacentColdShardsAreMerged(t *testing.T) {
	f := newFixture(t, 3, Config{ShardLevelMetrics: true})
	shards := f.openShards()
	loads := []float64{0.9, 0.15, 0.1}
	for k := 15; k >= 0; k-- {
		f.put("", f.clock.minute(k), (0.9+0.15+0.1)/3, 3, 0)
		for i, s := range shards {
			f.put(aws.ToString(s.ShardId), f.clock.minute(k), loads[i], 1, 0)
		}
	}
	out := f.run()
	if out.Action != policy.ActionMergeShards || !out.Executed {
		t.Fatalf("got %+v, want a merge", out)
	}
	if got := []string{out.ShardID, out.AdjacentShardID}; got[0] != aws.ToString(shards[1].ShardId) || got[1] != aws.ToString(shards[2].ShardId) {
		t.Fatalf("merged %v, want the two cold shards", got)
	}
	f.waitActive()
	if n := len(f.openShards()); n != 2 {
		t.Fatalf("open shards = %d, want 2", n)
	}
}

func TestSkipsWhileTheStreamIsNotActive(t *testing.T) {
	f := newFixture(t, 2, Config{})
	f.putMinutes(3, 0, 1.0, 2)
	out := f.run()
	if !out.Executed {
		t.Fatalf("setup scale-up not executed: %+v", out)
	}
	// Immediately after, the stream is UPDATING: the next invocation skips without deciding.
	out = f.run()
	if out.Action != policy.ActionNone || !strings.Contains(out.Skipped, "UPDATING") {
		t.Fatalf("while UPDATING: got %+v", out)
	}
}

func TestDryRunDecidesButDoesNotAct(t *testing.T) {
	f := newFixture(t, 2, Config{DryRun: true})
	f.putMinutes(3, 0, 1.0, 2)
	out := f.run()
	if out.Action != policy.ActionUpdateShardCount || out.Executed || out.Skipped != "dry run" {
		t.Fatalf("got %+v", out)
	}
	if n := len(f.openShards()); n != 2 {
		t.Fatalf("dry run resharded: %d shards", n)
	}
	if tags := f.tags(); len(tags) != 0 {
		t.Fatalf("dry run wrote tags: %v", tags)
	}
}

func TestUnreadableHistoryStopsTheScaler(t *testing.T) {
	f := newFixture(t, 2, Config{})
	if _, err := f.kin.AddTagsToStream(f.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String(f.name), Tags: map[string]string{TagUpdateCalls: "yesterday"}}); err != nil {
		t.Fatal(err)
	}
	f.putMinutes(3, 0, 1.0, 2)
	_, err := f.scaler.Run(f.ctx, f.clock.now, "test")
	if !errors.Is(err, ErrBadHistoryTag) || !strings.Contains(err.Error(), TagUpdateCalls) {
		t.Fatalf("err = %v, want ErrBadHistoryTag naming %s", err, TagUpdateCalls)
	}
}

// failingTransport fails every request whose body contains match with an HTTP 500, and passes the rest to the
// real emulator.
type failingTransport struct {
	match string
	next  http.RoundTripper
}

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
		if strings.Contains(buf.String(), f.match) {
			return &http.Response{StatusCode: 500, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		}
		r.Body = readCloser{bytes.NewReader(buf.Bytes())}
	}
	return f.next.RoundTrip(r)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestCloudWatchFailureIsReturnedAndNothingIsDone(t *testing.T) {
	f := newFixture(t, 2, Config{})
	f.putMinutes(3, 0, 1.0, 2)
	f.cw = testEmulators.Get(t).CloudWatchClient(func(o *cloudwatch.Options) {
		o.HTTPClient = &http.Client{Transport: failingTransport{match: "GetMetricData", next: http.DefaultTransport}}
		o.RetryMaxAttempts = 1
	})
	f.scaler = f.newScaler(Config{})
	_, err := f.scaler.Run(f.ctx, f.clock.now, "test")
	if err == nil || !strings.Contains(err.Error(), "get metric data") {
		t.Fatalf("err = %v, want a GetMetricData failure", err)
	}
	if n := len(f.openShards()); n != 2 {
		t.Fatalf("resharded without metrics: %d shards", n)
	}
}

func TestDecisionEmitsEMFMetrics(t *testing.T) {
	f := newFixture(t, 2, Config{})
	var emf telemetry.SyncBuffer
	metrics, err := telemetry.NewMetrics(&emf, telemetry.MetricsConfig{
		Namespace: MetricsNamespace, Dimensions: []telemetry.Dimension{{Name: MetricsDimensionStream, Value: f.name}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StreamName: f.name}, f.kin, f.cw, telemetry.NewLogger(f.logs, 0), metrics)
	if err != nil {
		t.Fatal(err)
	}
	f.putMinutes(3, 0, 1.0, 2)
	if _, err := s.Run(f.ctx, f.clock.now, "test"); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Flush(); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(emf.String())), &doc); err != nil {
		t.Fatalf("EMF output is not one JSON line: %q", emf.String())
	}
	for name, want := range map[string]float64{MetricOpenShardCount: 2, MetricTargetShardCount: 4, MetricScalingActions: 1} {
		got, ok := doc[name].(float64)
		if !ok {
			if vs, isList := doc[name].([]any); isList && len(vs) == 1 {
				got, ok = vs[0].(float64)
			}
		}
		if !ok || got != want {
			t.Errorf("%s = %v, want %v (line %s)", name, doc[name], want, emf.String())
		}
	}
	if doc[MetricsDimensionStream] != f.name {
		t.Errorf("dimension %s = %v, want %s", MetricsDimensionStream, doc[MetricsDimensionStream], f.name)
	}
}

// A dry run decides as the live scaler would: an action recorded by an earlier live run, now settled, must not hold
// back its scale-ups, although the dry run never writes the settlement to the tags.
func TestDryRunSettlesThePreviousActionInMemory(t *testing.T) {
	f := newFixture(t, 2, Config{DryRun: true})
	before := EncodeHistory(policy.History{}.Record(policy.ActionUpdateShardCount, f.clock.now.Add(-time.Hour)))
	if _, err := f.kin.AddTagsToStream(f.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String(f.name), Tags: before}); err != nil {
		t.Fatal(err)
	}
	f.putMinutes(3, 0, 1.0, 2)
	out := f.run()
	if out.Action != policy.ActionUpdateShardCount || out.Rule != policy.RuleScaleUp || out.Executed || out.Skipped != "dry run" {
		t.Fatalf("got %s/%s executed %v skipped %q (%s), want a dry-run scale-up", out.Action, out.Rule, out.Executed, out.Skipped, out.Reason)
	}
	if got := f.tags(); got[TagLastAction] != before[TagLastAction] || got[TagUpdateCalls] != before[TagUpdateCalls] {
		t.Fatalf("dry run changed the history tags: %v, was %v", got, before)
	}
}
