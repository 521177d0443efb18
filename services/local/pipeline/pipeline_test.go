package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/telemetry"
)

// producerEMFLine writes the EMF line the producer's metrics writer would write for these counters.
func producerEMFLine(t *testing.T, kinesisRecords, kinesisBytes, userRecords float64) []byte {
	t.Helper()
	var buf bytes.Buffer
	m, err := telemetry.NewMetrics(&buf, telemetry.MetricsConfig{Dimensions: []telemetry.Dimension{{Name: "Service", Value: "producer"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(kpl.MetricKinesisRecordsPut, telemetry.UnitCount, kinesisRecords)
	m.Add(kpl.MetricKinesisRecordsDataPut, telemetry.UnitBytes, kinesisBytes)
	m.Add(kpl.MetricUserRecordsPut, telemetry.UnitCount, userRecords)
	m.Add(kpl.MetricErrorsByCode, telemetry.UnitCount, 1, telemetry.Dimension{Name: kpl.DimensionErrorCode, Value: "Throttled"})
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseProducerEMF(t *testing.T) {
	lines := bytes.Split(bytes.TrimSpace(producerEMFLine(t, 3, 4096, 250)), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want two EMF lines (errors by code, and the rest), got %d:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
	puts, errorsByCode := lines[0], lines[1]
	if bytes.Contains(errorsByCode, []byte(`"`+kpl.MetricKinesisRecordsPut+`"`)) {
		puts, errorsByCode = errorsByCode, puts
	}
	tests := map[string]struct {
		line   []byte
		want   producerMetrics
		wantOK bool
	}{
		"the producer's put counters":  {line: puts, want: producerMetrics{KinesisRecords: 3, KinesisBytes: 4096, UserRecords: 250}, wantOK: true},
		"another dimension set":        {line: errorsByCode},
		"a log line":                   {line: []byte(`{"time":"x","level":"INFO","msg":"serving"}`)},
		"a log line naming the metric": {line: []byte(`{"msg":"KinesisRecordsPut is a metric"}`)},
		"no timestamp":                 {line: []byte(`{"KinesisRecordsPut":1}`)},
		"truncated":                    {line: puts[:20]},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := parseProducerEMF(tc.line)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v; want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if got.At.IsZero() || time.Since(got.At) > time.Minute {
				t.Errorf("time %v; want the line's timestamp (now)", got.At)
			}
			got.At = time.Time{}
			if got != tc.want {
				t.Errorf("metrics %+v; want %+v", got, tc.want)
			}
		})
	}
}

// fakeCloudWatch records PutMetricData calls and fails while failing is set.
type fakeCloudWatch struct {
	failing bool
	calls   []*cloudwatch.PutMetricDataInput
}

func (f *fakeCloudWatch) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	if f.failing {
		return nil, errors.New("emulator down")
	}
	f.calls = append(f.calls, in)
	return &cloudwatch.PutMetricDataOutput{}, nil
}

func TestPublisherPutsStreamMetricsAndKeepsWhatFailed(t *testing.T) {
	// GIVEN a producer log with a log line, two EMF intervals and half of a third line
	dir := t.TempDir()
	path := filepath.Join(dir, "producer.log")
	third := producerEMFLine(t, 1, 10, 1)
	content := append([]byte(`{"msg":"serving"}`+"\n"), producerEMFLine(t, 2, 1000, 100)...)
	content = append(content, producerEMFLine(t, 5, 3000, 400)...)
	content = append(content, third[:30]...)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	cw := &fakeCloudWatch{failing: true}
	p := &streamMetricsPublisher{stream: "s1", cw: cw, tail: lineTail{path: path}}
	ctx := context.Background()

	// WHEN CloudWatch fails, THEN the error is returned and nothing is lost
	if err := p.publish(ctx); err == nil || !strings.Contains(err.Error(), "emulator down") {
		t.Fatalf("publish = %v; want the CloudWatch error", err)
	}
	// WHEN it works again and the third line is completed
	cw.failing = false
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(third[30:])
	f.Close()
	if err := p.publish(ctx); err != nil {
		t.Fatal(err)
	}
	// THEN every interval is one IncomingBytes and one IncomingRecords datapoint of the stream, in AWS/Kinesis
	if len(cw.calls) != 1 {
		t.Fatalf("%d PutMetricData calls; want 1", len(cw.calls))
	}
	in := cw.calls[0]
	if aws.ToString(in.Namespace) != KinesisNamespace || len(in.MetricData) != 6 {
		t.Fatalf("namespace %s with %d datums; want %s with 6", aws.ToString(in.Namespace), len(in.MetricData), KinesisNamespace)
	}
	var bytesSum, recordsSum float64
	for _, d := range in.MetricData {
		if len(d.Dimensions) != 1 || aws.ToString(d.Dimensions[0].Name) != DimensionStreamName || aws.ToString(d.Dimensions[0].Value) != "s1" {
			t.Errorf("datum dimensions %+v; want StreamName=s1", d.Dimensions)
		}
		switch aws.ToString(d.MetricName) {
		case MetricIncomingBytes:
			bytesSum += aws.ToFloat64(d.Value)
		case MetricIncomingRecords:
			recordsSum += aws.ToFloat64(d.Value)
		}
	}
	if bytesSum != 4010 || recordsSum != 8 {
		t.Errorf("IncomingBytes %v, IncomingRecords %v; want 4010 and 8 (aggregates, not user records)", bytesSum, recordsSum)
	}
	if n, err := p.userRecordsPut(); err != nil || n != 501 {
		t.Errorf("user records put = %d, %v; want 501", n, err)
	}
	// WHEN nothing new was written, THEN nothing is put again
	if err := p.publish(ctx); err != nil || len(cw.calls) != 1 {
		t.Errorf("publish with nothing new: %v, %d calls; want no call", err, len(cw.calls))
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"zero value":         {cfg: Config{}},
		"polling":            {cfg: Config{ReadMode: ReadModePolling}},
		"bad read mode":      {cfg: Config{ReadMode: "push"}, want: "read mode"},
		"negative consumers": {cfg: Config{Consumers: -1}, want: "consumers"},
		"port out of range":  {cfg: Config{Port: 70000}, want: "port"},
		"negative failover":  {cfg: Config{FailoverTime: -time.Second}, want: "must not be negative"},
		"bad policy":         {cfg: Config{Policy: policy.Config{MinShards: 4, MaxShards: 2}}, want: "autoscaler"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.cfg.withDefaults()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v; want one mentioning %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Port != DefaultPort || got.Shards != DefaultShards || got.Consumers != DefaultConsumers || got.Stream != DefaultStream ||
				got.Dir != DefaultDir || got.AutoscaleInterval != DefaultAutoscaleInterval || got.MetricsInterval != DefaultMetricsInterval {
				t.Errorf("defaults not applied: %+v", got)
			}
			if tc.cfg.ReadMode == "" && got.ReadMode != ReadModeFanOut {
				t.Errorf("read mode %q; want %s by default", got.ReadMode, ReadModeFanOut)
			}
		})
	}
}

func TestLineTailReturnsOnlyCompleteLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	tail := lineTail{path: path}
	read := func() []string {
		var got []string
		if err := tail.next(func(l []byte) { got = append(got, string(l)) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(); got != nil {
		t.Fatalf("missing file gave %q", got)
	}
	steps := []struct {
		write string
		want  []string
	}{
		{write: "a\nb", want: []string{"a"}},
		{write: "c\n\nd\n", want: []string{"bc", "", "d"}},
		{write: "", want: nil},
	}
	for _, s := range steps {
		f, _ := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		f.WriteString(s.write)
		f.Close()
		if got := read(); strings.Join(got, "|") != strings.Join(s.want, "|") || len(got) != len(s.want) {
			t.Fatalf("after writing %q: lines %q; want %q", s.write, got, s.want)
		}
	}
}

func TestStatusLine(t *testing.T) {
	tests := map[string]struct {
		s    Status
		want string
	}{
		"steady": {s: Status{RecordsIn: 10, RecordsProcessed: 8, Behind: 2, OpenShards: 5, StreamStatus: "ACTIVE"}, want: "records in 10 · processed 8 · behind 2 · shards 5"},
		"resharding": {s: Status{RecordsIn: 1, RecordsProcessed: 1, OpenShards: 5, StreamStatus: "UPDATING", LastScaling: "UpdateShardCount 5→7"},
			want: "records in 1 · processed 1 · behind 0 · shards 5 (UPDATING) · autoscaler: UpdateShardCount 5→7"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("%q; want %q", got, tc.want)
			}
		})
	}
}

func FuzzParseProducerEMF(f *testing.F) {
	f.Add([]byte(`{"_aws":{"Timestamp":1700000000000},"KinesisRecordsPut":2,"KinesisRecordsDataPut":100,"UserRecordsPut":7}`))
	f.Add([]byte(`{"KinesisRecordsPut":"x"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, ok := parseProducerEMF(line)
		if ok && m.At.IsZero() {
			t.Fatalf("accepted a line without a timestamp: %q", line)
		}
	})
}

func TestRecordsProcessedComesFromTheEMFLines(t *testing.T) {
	tests := map[string]struct {
		line   string
		want   int64
		wantOK bool
	}{
		"the worker's metrics": {line: emf(time.UnixMilli(1), map[string]any{"RecordsProcessed": 3, "BytesProcessed": 300}), want: 3, wantOK: true},
		"a record line": {
			line: `{"shard_id":"shardId-000000000000","sequence_number":"4968","sub_sequence_number":0,"partition_key":"6","arrival_time":"2026-11-26T01:00:09.486Z","data":"RecordsProcessed"}`,
		},
		"a log line naming the metric":    {line: `{"level":"INFO","msg":"RecordsProcessed","_aws":"x"}`},
		"other metrics":                   {line: `{"_aws":{"Timestamp":1},"LeasesTaken":2}`},
		"a MultiLang child's stderr line": {line: `{"msg":"record processor stderr","line":"RecordsProcessed 9"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, ok := recordsProcessed([]byte(tc.line)); got != tc.want || ok != tc.wantOK {
				t.Errorf("recordsProcessed = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
