package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/telemetry"
)

// testEmulators are started by the first test that needs them (the pure tests of this package do not).
var testEmulators = &emulatortest.Shared{Options: emulator.Options{
	Kinesis: true, CloudWatch: true, KinesisEnv: []string{"UPDATE_SHARD_COUNT_DURATION=500ms", "CREATE_STREAM_DURATION=300ms"},
}}

func TestMain(m *testing.M) { os.Exit(testEmulators.Run(m)) }

// The function as deployed, minus the Lambda runtime: the throttling alarm's event makes it scale the stream up at
// once, the schedule's next event finds the stream UPDATING and skips, and each invocation writes one JSON decision
// line and one EMF line to the function's output.
func TestHandlerOnEmulatorsScalesUpOnTheAlarmAndSkipsWhileUpdating(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emu := testEmulators.Get(t)
	kin, cw := emu.KinesisClient(), emu.CloudWatchClient()
	// GIVEN a stream of 2 shards whose last minutes, an hour back so that every datapoint is in the past for moto,
	// show 60 % of capacity with records throttled (a hot moment the minute sums smooth out), which the alarm reports
	name := fmt.Sprintf("handler-%d", time.Now().UnixNano())
	emulatortest.CreateStream(ctx, t, kin, name, 2)
	now := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour + 30*time.Second)
	putThrottledMinutes(ctx, t, cw, name, now)
	var out telemetry.SyncBuffer
	h, err := newHandler(scaler.Config{StreamName: name}, kin, cw, &out, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}

	// WHEN the alarm invokes the function, and then the schedule
	invoke(ctx, t, h, "alarm", `{"source":"aws.cloudwatch","detail-type":"CloudWatch Alarm State Change","detail":{"alarmName":"stream-throttling","state":{"value":"ALARM"}}}`)
	invoke(ctx, t, h, "schedule", `{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`)

	// THEN the alarm's invocation scaled up and the schedule's skipped, each with one decision line and one EMF line
	decisions, emf := splitOutput(t, out.String())
	checkDecisionLines(t, decisions, name)
	checkEMFLines(t, emf, name)
	// AND the stream has the 3 shards of the scale-up once it is ACTIVE again
	emulatortest.WaitStreamActive(ctx, t, kin, name)
	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 3 {
		t.Fatalf("open shards = %d, want 3", len(shards.Shards))
	}
}

// putThrottledMinutes writes the stream's metrics of the three minutes before now: 60 % of the write capacity of 2
// shards, with 500 records throttled in each.
func putThrottledMinutes(ctx context.Context, t *testing.T, cw *cloudwatch.Client, name string, now time.Time) {
	t.Helper()
	dims := []cwtypes.Dimension{{Name: aws.String("StreamName"), Value: aws.String(name)}}
	for k := 3; k >= 1; k-- {
		minute := now.Truncate(time.Minute).Add(-time.Duration(k) * time.Minute)
		bytes := 0.6 * 2 * policy.WriteBytesPerShard * 60.0
		var data []cwtypes.MetricDatum
		for metric, v := range map[string]float64{"IncomingBytes": bytes, "IncomingRecords": bytes / 2048, "WriteProvisionedThroughputExceeded": 500} {
			data = append(data, cwtypes.MetricDatum{MetricName: aws.String(metric), Dimensions: dims, Timestamp: aws.Time(minute), Value: aws.Float64(v)})
		}
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/Kinesis"), MetricData: data}); err != nil {
			t.Fatal(err)
		}
	}
}

// invoke hands the handler one event, as the Lambda runtime does, and fails t when it returns an error.
func invoke(ctx context.Context, t *testing.T, h *handler, what, event string) {
	t.Helper()
	if err := h.handle(ctx, json.RawMessage(event)); err != nil {
		t.Fatalf("%s invocation: %v", what, err)
	}
}

// splitOutput parses the function's output, one JSON document a line, into decision lines and EMF lines.
func splitOutput(t *testing.T, out string) (decisions, emf []map[string]any) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("output line is not JSON: %q", line)
		}
		if _, ok := doc["_aws"]; ok {
			emf = append(emf, doc)
		} else {
			decisions = append(decisions, doc)
		}
	}
	if len(decisions) != 2 || len(emf) != 2 {
		t.Fatalf("got %d decision lines and %d EMF lines, want 2 and 2:\n%s", len(decisions), len(emf), out)
	}
	return decisions, emf
}

// checkDecisionLines checks the alarm's scale-up of stream name to 3 shards and the schedule's skip while UPDATING.
func checkDecisionLines(t *testing.T, decisions []map[string]any, name string) {
	t.Helper()
	up, skip := decisions[0], decisions[1]
	if up["trigger"] != "alarm stream-throttling ALARM" || up["action"] != "UpdateShardCount" || up["rule"] != string(policy.RuleThrottled) ||
		up["target_shard_count"] != 3.0 || up["executed"] != true || up["stream"] != name {
		t.Errorf("alarm decision line: %v", up)
	}
	if skip["trigger"] != "schedule" || skip["action"] != "none" || !strings.Contains(fmt.Sprint(skip["skipped"]), "UPDATING") {
		t.Errorf("schedule decision line while UPDATING: %v", skip)
	}
}

// checkEMFLines checks that the first invocation counted one scaling action of stream name and the second none.
func checkEMFLines(t *testing.T, emf []map[string]any, name string) {
	t.Helper()
	for i, want := range []float64{1, 0} {
		if got := first(emf[i][scaler.MetricScalingActions]); got != want || emf[i][scaler.MetricsDimensionStream] != name {
			t.Errorf("EMF line %d: %s = %v, want %v; stream %v", i, scaler.MetricScalingActions, got, want, emf[i][scaler.MetricsDimensionStream])
		}
	}
}

// first is an EMF value, which the writer may emit as a number or a one-element list.
func first(v any) any {
	if vs, ok := v.([]any); ok && len(vs) == 1 {
		return vs[0]
	}
	return v
}
