package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/local/pipeline"
)

// lockedBuilder is a strings.Builder safe for the runner's and the build's concurrent writes.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunServesARecordAndStopsEverything runs the local pipeline as `make local` does, sends the README's request,
// finds the record in the stream, and checks that stopping leaves none of the processes it started.
func TestRunServesARecordAndStopsEverything(t *testing.T) {
	// GIVEN the local pipeline on a free port
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	ready := make(chan *pipeline.Pipeline, 1)
	result := make(chan error, 1)
	var out lockedBuilder
	cfg := pipeline.Config{Port: port, Shards: 2, Consumers: 2, Stream: "local-test", Dir: dir, AutoscaleInterval: -1,
		FailoverTime: 3 * time.Second, BuildOutput: &out}
	go func() {
		result <- run(ctx, cfg, &out, false, func(p *pipeline.Pipeline) { ready <- p })
	}()
	var p *pipeline.Pipeline
	select {
	case p = <-ready:
	case err := <-result:
		t.Fatalf("run ended before the pipeline was ready: %v\n%s", err, out.String())
	case <-time.After(3 * time.Minute):
		t.Fatal("pipeline not ready after 3 minutes")
	}
	if !strings.Contains(out.String(), "curl -d '{\"data\":\"This is a testing record\"}'") {
		t.Errorf("banner lacks the curl command:\n%s", out.String())
	}

	// WHEN the README's request is sent
	resp, err := http.Post(p.ProducerURL()+"/", "application/json", strings.NewReader(`{"data":"This is a testing record"}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST status %d: %s", resp.StatusCode, body)
	}
	var ack struct{ ShardID, SequenceNumber string }
	if err := json.Unmarshal(body, &ack); err != nil || ack.ShardID == "" || ack.SequenceNumber == "" {
		t.Fatalf("acknowledgement %s: %v", body, err)
	}

	// THEN the record is in the stream at the acknowledged position
	kc := p.Emulators().KinesisClient()
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("local-test"), ShardId: aws.String(ack.ShardID),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(ack.SequenceNumber),
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	got, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(got.Records) == 0 {
		t.Fatalf("GetRecords: %d records, %v", len(got.Records), err)
	}
	users, err := kpl.Deaggregate(nil, aws.ToString(got.Records[0].PartitionKey), got.Records[0].Data)
	if err != nil {
		t.Fatalf("deaggregate: %v", err)
	}
	if len(users) == 0 || string(users[0].Data) != "This is a testing record" {
		t.Fatalf("record in the stream = %+v; want the data sent", users)
	}

	// THEN a consumer worker processes it: one JSON line at the acknowledged position
	deadline := time.Now().Add(time.Minute)
	for !consumerLogged(t, dir, ack.ShardID, ack.SequenceNumber) {
		if time.Now().After(deadline) {
			t.Fatalf("no consumer logged the record at %s/%s within a minute", ack.ShardID, ack.SequenceNumber)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// THEN the status line counts it in and processed, and the autoscaler sees the published stream metrics
	var st pipeline.Status
	for st.RecordsIn < 1 || st.RecordsProcessed < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v after a minute; want the record counted in and processed", st)
		}
		time.Sleep(200 * time.Millisecond)
		if st, err = p.Status(ctx); err != nil {
			t.Fatalf("status: %v", err)
		}
	}
	if st.OpenShards != 2 {
		t.Errorf("status shards = %d; want 2", st.OpenShards)
	}
	if err := p.PublishMetrics(ctx); err != nil {
		t.Fatalf("publish metrics: %v", err)
	}
	metrics, err := p.Emulators().CloudWatchClient().ListMetrics(ctx, &cloudwatch.ListMetricsInput{
		Namespace: aws.String(pipeline.KinesisNamespace), MetricName: aws.String(pipeline.MetricIncomingRecords),
	})
	if err != nil || len(metrics.Metrics) != 1 || aws.ToString(metrics.Metrics[0].Dimensions[0].Value) != "local-test" {
		t.Fatalf("CloudWatch %s metrics = %+v, %v; want one for the stream", pipeline.MetricIncomingRecords, metrics, err)
	}
	// THEN CloudWatch holds the stream's real numbers: the one Kinesis record the producer put, and its bytes
	// (data and partition key, as Kinesis counts IncomingBytes) as read back from the stream
	wantBytes := float64(len(got.Records[0].Data) + len(aws.ToString(got.Records[0].PartitionKey)))
	var records, incomingBytes float64
	deadline = time.Now().Add(time.Minute)
	for records < 1 || incomingBytes < wantBytes {
		if time.Now().After(deadline) {
			t.Fatalf("CloudWatch %s = %v, %s = %v after a minute; want 1 and %v", pipeline.MetricIncomingRecords, records,
				pipeline.MetricIncomingBytes, incomingBytes, wantBytes)
		}
		if err := p.PublishMetrics(ctx); err != nil {
			t.Fatalf("publish metrics: %v", err)
		}
		records = streamMetricSum(ctx, t, p, "local-test", pipeline.MetricIncomingRecords)
		incomingBytes = streamMetricSum(ctx, t, p, "local-test", pipeline.MetricIncomingBytes)
		time.Sleep(200 * time.Millisecond)
	}
	if records != 1 || incomingBytes != wantBytes {
		t.Errorf("CloudWatch %s = %v, %s = %v; want 1 and %v", pipeline.MetricIncomingRecords, records,
			pipeline.MetricIncomingBytes, incomingBytes, wantBytes)
	}
	outcome, err := p.Autoscale(ctx, time.Now(), "test")
	if err != nil || outcome.CurrentShardCount != 2 {
		t.Fatalf("autoscale = %+v, %v; want a decision on 2 shards", outcome, err)
	}

	// WHEN stopped
	pids := p.PIDs()
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of cancellation")
	}
	// THEN no process it started is left
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists (kill 0: %v)", pid, err)
		}
	}
}

// streamMetricSum returns the Sum of the stream's AWS/Kinesis metric over the last ten minutes, as the autoscaler
// would read it from CloudWatch.
func streamMetricSum(ctx context.Context, t *testing.T, p *pipeline.Pipeline, stream, metric string) float64 {
	t.Helper()
	now := time.Now()
	out, err := p.Emulators().CloudWatchClient().GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String(pipeline.KinesisNamespace), MetricName: aws.String(metric),
		Dimensions: []cwtypes.Dimension{{Name: aws.String(pipeline.DimensionStreamName), Value: aws.String(stream)}},
		StartTime:  aws.Time(now.Add(-10 * time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
		Period: aws.Int32(60), Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
	})
	if err != nil {
		t.Fatalf("GetMetricStatistics %s: %v", metric, err)
	}
	sum := 0.0
	for _, d := range out.Datapoints {
		sum += aws.ToFloat64(d.Sum)
	}
	return sum
}

// consumerLogged reports whether a consumer worker's log holds the record line of the test's record.
func consumerLogged(t *testing.T, dir, shardID, sequenceNumber string) bool {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "logs", "consumer-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range logs {
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(content), "\n") {
			var rec struct {
				ShardID        string `json:"shard_id"`
				SequenceNumber string `json:"sequence_number"`
				Data           string `json:"data"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.ShardID == shardID &&
				rec.SequenceNumber == sequenceNumber && rec.Data == "This is a testing record" {
				return true
			}
		}
	}
	return false
}

func TestParseFlagsRejectsBadValues(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"no shards":         {args: []string{"-shards", "0"}, want: "-shards must be at least 1"},
		"no consumers":      {args: []string{"-consumers", "0"}, want: "-consumers must be at least 1"},
		"unknown read mode": {args: []string{"-read-mode", "push"}, want: "-read-mode must be fanout or polling"},
		"autoscale never 0": {args: []string{"-autoscale-interval", "0"}, want: "-autoscale-interval must not be 0"},
		"stray argument":    {args: []string{"extra"}, want: "unexpected arguments"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var errOut strings.Builder
			if _, err := parseFlags(tc.args, &errOut); err == nil {
				t.Fatalf("want an error for %v", tc.args)
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("message %q does not say %q", errOut.String(), tc.want)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
