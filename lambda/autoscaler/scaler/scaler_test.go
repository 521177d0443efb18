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
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/telemetry"
)

// testEmulators are kinesis-local (with quick resharding) and moto_server, started once for the package by the first
// test that needs them.
var testEmulators = &emulatortest.Shared{Options: emulator.Options{
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
	emulatortest.CreateStream(ctx, t, f.kin, f.name, shards)
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

// waitActive waits until the stream is ACTIVE again after a resharding operation.
func (f *fixture) waitActive() {
	f.t.Helper()
	emulatortest.WaitStreamActive(f.ctx, f.t, f.kin, f.name)
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

func (f *fixture) history() policy.History {
	f.t.Helper()
	h, err := DecodeHistory(f.tags())
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

func TestLoadStepScalesUpOnTheNextInvocation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, Config{})
	f.putMinutes(10, 0, 0.5, 2)
	if out := f.run(); out.Action != policy.ActionNone || out.Rule != policy.RuleSteady {
		t.Fatalf("steady load: got %s/%s (%s)", out.Action, out.Rule, out.Reason)
	}

	// The load doubles; the next invocation (one minute later, the step's minutes published) scales up.
	f.clock.now = f.clock.now.Add(2 * time.Minute)
	f.putMinutes(1, 0, 1.0, 2)
	out := f.run()
	// 2 shards of load at the 70% target: 3 shards.
	if out.Action != policy.ActionUpdateShardCount || !out.Executed || out.TargetShardCount != 3 {
		t.Fatalf("after the step: got %+v", out)
	}
	f.waitActive()
	if n := len(f.openShards()); n != 3 {
		t.Fatalf("open shards = %d, want 3", n)
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
	if line["stream"] != f.name || line["action"] != "UpdateShardCount" || line["target_shard_count"] != 3.0 || line["executed"] != true {
		t.Fatalf("decision log line: %v", line)
	}
}

func TestQuietPeriodScalesDownOnlyAfterTheHoldTime(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

func TestSplitHalfIsMergedOnItsParentsMetrics(t *testing.T) {
	t.Parallel()
	// GIVEN a stream whose second shard was split 3 minutes ago: the parent carried 80% of a shard for the 12
	// minutes before, its lower half 20% since, the upper half 60%, and the first shard 45% throughout
	f := newFixture(t, 2, Config{ShardLevelMetrics: true})
	shards := f.openShards()
	first, parent := aws.ToString(shards[0].ShardId), shards[1]
	start, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	end, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	if _, err := f.kin.SplitShard(f.ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(f.name), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(policy.Midpoint(start, end).String()),
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	f.waitActive()
	var lower, upper string
	for _, s := range f.openShards() {
		switch aws.ToString(s.HashKeyRange.StartingHashKey) {
		case start.String():
			lower = aws.ToString(s.ShardId)
		case policy.Midpoint(start, end).String():
			upper = aws.ToString(s.ShardId)
		}
	}
	if lower == "" || upper == "" {
		t.Fatalf("split halves not found among %+v", f.openShards())
	}
	for k := 14; k >= 0; k-- {
		f.put("", f.clock.minute(k), 1.25/3, 3, 0)
		f.put(first, f.clock.minute(k), 0.45, 1, 0)
		if k >= 3 {
			f.put(aws.ToString(parent.ShardId), f.clock.minute(k), 0.8, 1, 0)
			continue
		}
		f.put(lower, f.clock.minute(k), 0.2, 1, 0)
		f.put(upper, f.clock.minute(k), 0.6, 1, 0)
	}
	// WHEN the scaler decides
	out := f.run()
	// THEN the lower half joins the first shard (its 3 minutes of its own and its parent's share before them cover
	// the hold window), not its sibling
	if out.Action != policy.ActionMergeShards || !out.Executed || out.ShardID != first || out.AdjacentShardID != lower {
		t.Fatalf("got %+v, want a merge of %s and %s", out, first, lower)
	}
}

func TestSkipsWhileTheStreamIsNotActive(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	for name, want := range map[string]float64{MetricOpenShardCount: 2, MetricTargetShardCount: 3, MetricScalingActions: 1} {
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
	t.Parallel()
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

// putMetric writes one AWS/Kinesis datapoint with the stream's dimension and extra dimensions (name, value pairs).
func (f *fixture) putMetric(name string, minute time.Time, v float64, dims ...string) {
	f.t.Helper()
	ds := []cwtypes.Dimension{{Name: aws.String("StreamName"), Value: aws.String(f.name)}}
	for i := 0; i+1 < len(dims); i += 2 {
		ds = append(ds, cwtypes.Dimension{Name: aws.String(dims[i]), Value: aws.String(dims[i+1])})
	}
	_, err := f.cw.PutMetricData(f.ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(kinesisNamespace), MetricData: []cwtypes.MetricDatum{
		{MetricName: aws.String(name), Dimensions: ds, Timestamp: aws.Time(minute), Value: aws.Float64(v)},
	}})
	if err != nil {
		f.t.Fatalf("put %s: %v", name, err)
	}
}

// registerConsumer registers an enhanced fan-out consumer and waits until it is ACTIVE.
func (f *fixture) registerConsumer(name string) {
	f.t.Helper()
	if _, err := emulator.RegisterStreamConsumer(f.ctx, f.kin, f.name, name); err != nil {
		f.t.Fatal(err)
	}
}

// The scaler reads GetRecords.Bytes and each fan-out consumer's SubscribeToShardEvent.Bytes (with its ConsumerName
// dimension) and scales for the busiest reader, while the writes alone are low.
func TestReadSideMetricsDriveScaling(t *testing.T) {
	t.Parallel()
	const shards = 2
	readLimit := float64(shards) * policy.ReadBytesPerShard * 60
	tests := map[string]struct {
		consumers  int
		getRecords float64 // utilisation of the shared GetRecords limit
		fanOut     float64 // utilisation of each fan-out consumer's own limit
		wantAction policy.Action
		wantRule   policy.Rule
		wantTarget int
	}{
		"polling consumers at their shared limit": {
			getRecords: 0.9, wantAction: policy.ActionUpdateShardCount, wantRule: policy.RuleScaleUp, wantTarget: 3,
		},
		"one fan-out consumer near its own limit": {
			consumers: 1, getRecords: 0.1, fanOut: 0.9, wantAction: policy.ActionUpdateShardCount, wantRule: policy.RuleScaleUp, wantTarget: 3,
		},
		"three fan-out consumers each at half their own limit": {
			consumers: 3, getRecords: 0.1, fanOut: 0.5, wantAction: policy.ActionNone, wantRule: policy.RuleSteady, wantTarget: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, shards, Config{})
			var names []string
			for i := range tc.consumers {
				names = append(names, fmt.Sprintf("reader-%d", i))
				f.registerConsumer(names[i])
			}
			for k := 3; k >= 0; k-- {
				m := f.clock.minute(k)
				written := 0.2 * shards * policy.WriteBytesPerShard * 60
				f.putMetric("IncomingBytes", m, written)
				f.putMetric("IncomingRecords", m, written/2048)
				f.putMetric("GetRecords.Bytes", m, tc.getRecords*readLimit)
				for _, c := range names {
					f.putMetric("SubscribeToShardEvent.Bytes", m, tc.fanOut*readLimit, "ConsumerName", c)
				}
			}
			out := f.run()
			if out.Action != tc.wantAction || out.Rule != tc.wantRule || out.TargetShardCount != tc.wantTarget {
				t.Fatalf("got %s/%s target %d (%s), want %s/%s target %d", out.Action, out.Rule, out.TargetShardCount, out.Reason, tc.wantAction, tc.wantRule, tc.wantTarget)
			}
			if tc.wantAction != policy.ActionNone && !out.Executed {
				t.Fatalf("not executed: %+v", out)
			}
		})
	}
}

// The UpdateShardCount limit and the scale-up reserve hold for a new Scaler (a cold start) because the calls are
// read back from the stream's tags; calls older than 24 hours neither count nor stay in the tags.
func TestTagHistoryHoldsTheLimitsAcrossColdStarts(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		callsAgo   []time.Duration
		load       float64
		wantAction policy.Action
		wantRule   policy.Rule
		wantCalls  int // in the tags afterwards
	}{
		"every call of the last 24 h used: no scale-up": {
			callsAgo: hoursBack(10, 2), load: 1.0, wantAction: policy.ActionNone, wantRule: policy.RuleCallLimit, wantCalls: 10,
		},
		"only the reserve left: no scale-down": {
			callsAgo: hoursBack(7, 2), load: 0.1, wantAction: policy.ActionNone, wantRule: policy.RuleReserve, wantCalls: 7,
		},
		"calls older than 24 h do not count": {
			callsAgo: hoursBack(10, 25), load: 1.0, wantAction: policy.ActionUpdateShardCount, wantRule: policy.RuleScaleUp, wantCalls: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 4, Config{})
			h := policy.History{}
			for _, ago := range tc.callsAgo {
				h = h.Record(policy.ActionUpdateShardCount, f.clock.now.Add(-ago))
			}
			h, _ = h.MarkSettled(h.LastAction.Add(time.Minute))
			if _, err := f.kin.AddTagsToStream(f.ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String(f.name), Tags: EncodeHistory(h)}); err != nil {
				t.Fatal(err)
			}
			f.putMinutes(16, 0, tc.load, 4)
			out := f.run()
			if out.Action != tc.wantAction || out.Rule != tc.wantRule {
				t.Fatalf("got %s/%s (%s), want %s/%s", out.Action, out.Rule, out.Reason, tc.wantAction, tc.wantRule)
			}
			got, err := DecodeHistory(f.tags())
			if err != nil || len(got.UpdateShardCountCalls) != tc.wantCalls {
				t.Fatalf("tags hold %d calls (%v), want %d", len(got.UpdateShardCountCalls), err, tc.wantCalls)
			}
			if tc.wantAction == policy.ActionNone {
				if n := len(f.openShards()); n != 4 {
					t.Fatalf("resharded to %d shards", n)
				}
			}
		})
	}
}

// hoursBack returns k durations, one hour apart, the newest first hours ago, oldest first.
func hoursBack(k, first int) []time.Duration {
	out := make([]time.Duration, k)
	for i := range out {
		out[i] = time.Duration(first+k-1-i) * time.Hour
	}
	return out
}

// refusingTransport answers every Kinesis request for one operation with an error response, and passes the rest to
// the real emulator.
type refusingTransport struct {
	operation string // "UpdateShardCount"
	status    int
	errorType string
	next      http.RoundTripper
}

func (rt refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+rt.operation) {
		body := fmt.Sprintf(`{"__type":%q,"message":"refused by the test"}`, rt.errorType)
		return &http.Response{
			StatusCode: rt.status, Request: r, ContentLength: int64(len(body)),
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {rt.errorType}},
			Body:   readCloser{bytes.NewReader([]byte(body))},
		}, nil
	}
	return rt.next.RoundTrip(r)
}

// When Kinesis refuses a call the history allowed (calls made outside the autoscaler, another operation), the
// invocation ends without error and the call is not counted; a server error leaves it unknown whether the operation
// started, so it is returned and the call stays counted.
func TestKinesisRefusalIsReportedAndNotRecorded(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status       int
		errorType    string
		wantSkipped  string
		wantErr      bool
		wantRecorded int
	}{
		"daily limit reached":       {status: 400, errorType: "LimitExceededException", wantSkipped: "Kinesis refused"},
		"another operation running": {status: 400, errorType: "ResourceInUseException", wantSkipped: "another resharding operation"},
		"service failure":           {status: 500, errorType: "InternalFailure", wantErr: true, wantRecorded: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 2, Config{})
			f.kin = testEmulators.Get(t).KinesisClient(func(o *kinesis.Options) {
				o.HTTPClient = &http.Client{Transport: refusingTransport{operation: "UpdateShardCount", status: tc.status, errorType: tc.errorType, next: http.DefaultTransport}}
				o.RetryMaxAttempts = 1
			})
			f.scaler = f.newScaler(Config{})
			f.putMinutes(3, 0, 1.0, 2)
			out, err := f.scaler.Run(f.ctx, f.clock.now, "test")
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "UpdateShardCount") {
					t.Fatalf("err = %v, want the UpdateShardCount failure", err)
				}
			} else if err != nil || out.Executed || !strings.Contains(out.Skipped, tc.wantSkipped) {
				t.Fatalf("got %+v, %v; want skipped %q and no error", out, err, tc.wantSkipped)
			}
			if h := f.history(); len(h.UpdateShardCountCalls) != tc.wantRecorded {
				t.Fatalf("%d calls recorded, want %d (tags %v)", len(h.UpdateShardCountCalls), tc.wantRecorded, f.tags())
			}
		})
	}
}

// updatingTransport refuses AddTagsToStream with ResourceInUseException once a resharding call has gone through,
// as Kinesis may while the stream is UPDATING, and passes everything to the real emulator otherwise.
type updatingTransport struct {
	resharded *atomic.Bool
	next      http.RoundTripper
}

func (rt updatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	op := r.Header.Get("X-Amz-Target")
	if strings.HasSuffix(op, ".AddTagsToStream") && rt.resharded.Load() {
		return refusingTransport{operation: "AddTagsToStream", status: 400, errorType: "ResourceInUseException"}.RoundTrip(r)
	}
	resp, err := rt.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK && strings.HasSuffix(op, ".UpdateShardCount") {
		rt.resharded.Store(true)
	}
	return resp, err
}

// The history is saved before the action, so a stream that takes no tag writes while UPDATING still gets the
// call counted.
func TestActionIsRecordedBeforeTheStreamIsUpdating(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, Config{})
	var resharded atomic.Bool
	f.kin = testEmulators.Get(t).KinesisClient(func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: updatingTransport{resharded: &resharded, next: http.DefaultTransport}}
	})
	f.scaler = f.newScaler(Config{})
	f.putMinutes(3, 0, 1.0, 2)
	out := f.run()
	if !out.Executed || out.Decision.Action != policy.ActionUpdateShardCount {
		t.Fatalf("outcome %+v, want an UpdateShardCount made", out)
	}
	if !resharded.Load() {
		t.Fatal("the UpdateShardCount call did not reach Kinesis")
	}
	h := f.history()
	if len(h.UpdateShardCountCalls) != 1 || h.LastActionKind != policy.ActionUpdateShardCount {
		t.Fatalf("history %+v, want the call recorded", h)
	}
}

// Missing datapoints are unknown load: with none published, or with IncomingBytes but no IncomingRecords, a
// stream at many shards is neither scaled down nor up.
func TestMissingMetricsAreUnknownLoad(t *testing.T) {
	t.Parallel()
	tests := map[string]func(f *fixture){
		"no datapoints at all": func(*fixture) {},
		"bytes without records": func(f *fixture) {
			for k := 20; k >= 0; k-- {
				f.putMetric("IncomingBytes", f.clock.minute(k), 1000)
			}
		},
	}
	for name, publish := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 4, Config{})
			publish(f)
			out := f.run()
			if out.Action != policy.ActionNone || out.Rule != policy.RuleNoData {
				t.Fatalf("got %s/%s (%s), want none/%s", out.Action, out.Rule, out.Reason, policy.RuleNoData)
			}
		})
	}
}

// Invoked every minute: a step beyond capacity (records throttled) scales up on the first invocation that can read
// the step's first minute; a step that stays within capacity waits for its second minute above the threshold.
func TestLoadStepScalesUpOnTheFirstInvocationThatSeesIt(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		stepUtil   float64
		throttled  float64
		wantOnRun  int // 1 = the first invocation after the step's first minute
		wantRule   policy.Rule
		wantTarget int
	}{
		"step beyond capacity": {stepUtil: 1.0, throttled: 3000, wantOnRun: 1, wantRule: policy.RuleThrottled, wantTarget: 3},
		"step within capacity": {stepUtil: 0.8, wantOnRun: 2, wantRule: policy.RuleScaleUp, wantTarget: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 2, Config{})
			f.putMinutes(5, 0, 0.5, 2)
			if out := f.run(); out.Action != policy.ActionNone {
				t.Fatalf("before the step: %+v", out)
			}
			for run := 1; run <= tc.wantOnRun; run++ {
				f.clock.now = f.clock.now.Add(time.Minute)
				f.put("", f.clock.minute(0), tc.stepUtil, 2, tc.throttled)
				out := f.run()
				if run < tc.wantOnRun {
					if out.Action != policy.ActionNone {
						t.Fatalf("invocation %d after the step acted early: %+v", run, out)
					}
					continue
				}
				if out.Action != policy.ActionUpdateShardCount || out.Rule != tc.wantRule || out.TargetShardCount != tc.wantTarget || !out.Executed {
					t.Fatalf("invocation %d after the step: got %s/%s target %d executed %v (%s)", run, out.Action, out.Rule, out.TargetShardCount, out.Executed, out.Reason)
				}
			}
		})
	}
}
