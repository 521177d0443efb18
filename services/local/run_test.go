package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

	"github.com/streamproc/streamproc/internal/eventually"
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
	r := startLocalRun(t, pipeline.Config{Consumers: 2})
	if !strings.Contains(r.out.String(), "curl -d '{\"data\":\"This is a testing record\"}'") {
		t.Errorf("banner lacks the curl command:\n%s", r.out.String())
	}
	// WHEN the README's request is sent
	ack := postBlogRecord(t, r.p.ProducerURL())
	// THEN the record is in the stream at the acknowledged position
	stored := storedRecord(t, r.p, ack)
	// THEN a consumer worker processes it: one JSON line at the acknowledged position
	eventually.Succeeds(t, time.Minute, func() error {
		if !consumerLogged(t, r.dir, ack.ShardID, ack.SequenceNumber) {
			return fmt.Errorf("no consumer logged the record at %s/%s", ack.ShardID, ack.SequenceNumber)
		}
		return nil
	})
	// THEN the status line counts it in and processed, and the autoscaler sees the published stream metrics
	checkStatusCountsTheRecord(t, r.p)
	checkStreamMetrics(t, r.p, stored)
	outcome, err := r.p.Autoscale(t.Context(), time.Now(), "test")
	if err != nil || outcome.CurrentShardCount != 2 {
		t.Fatalf("autoscale = %+v, %v; want a decision on 2 shards", outcome, err)
	}
	// WHEN stopped THEN no process it started is left
	r.stopAndCheckNothingLeft(t)
}

// localRun is the runner started as `make local` starts it, in a test.
type localRun struct {
	p      *pipeline.Pipeline
	dir    string
	out    *lockedBuilder
	cancel context.CancelFunc
	result chan error
}

// startLocalRun runs the local pipeline (2 shards, no autoscaler timer, cfg's consumers and processor) and waits
// until it is ready.
func startLocalRun(t *testing.T, cfg pipeline.Config) *localRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &localRun{dir: t.TempDir(), out: &lockedBuilder{}, cancel: cancel, result: make(chan error, 1)}
	ready := make(chan *pipeline.Pipeline, 1)
	cfg.Port, cfg.Shards, cfg.Stream, cfg.Dir, cfg.AutoscaleInterval = freePort(t), 2, "local-test", r.dir, -1
	cfg.DashboardPort = cmp.Or(cfg.DashboardPort, freePort(t))
	cfg.FailoverTime, cfg.BuildOutput = 3*time.Second, r.out
	go func() {
		r.result <- run(ctx, cfg, r.out, false, func(p *pipeline.Pipeline) { ready <- p })
	}()
	select {
	case r.p = <-ready:
	case err := <-r.result:
		t.Fatalf("run ended before the pipeline was ready: %v\n%s", err, r.out.String())
	case <-time.After(3 * time.Minute):
		t.Fatal("pipeline not ready after 3 minutes")
	}
	return r
}

// stopAndCheckNothingLeft cancels the run, as Ctrl-C does, and checks that no process it started is left.
func (r *localRun) stopAndCheckNothingLeft(t *testing.T) {
	t.Helper()
	pids := r.p.PIDs()
	r.cancel()
	select {
	case err := <-r.result:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of cancellation")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists (kill 0: %v)", pid, err)
		}
	}
}

// acknowledgement is the producer's answer to a record.
type acknowledgement struct{ ShardID, SequenceNumber string }

// postBlogRecord sends the blog's request and returns the acknowledged position.
func postBlogRecord(t *testing.T, producerURL string) acknowledgement {
	t.Helper()
	resp, err := http.Post(producerURL+"/", "application/json", strings.NewReader(`{"data":"This is a testing record"}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST status %d: %s", resp.StatusCode, body)
	}
	var ack acknowledgement
	if err := json.Unmarshal(body, &ack); err != nil || ack.ShardID == "" || ack.SequenceNumber == "" {
		t.Fatalf("acknowledgement %s: %v", body, err)
	}
	return ack
}

// storedRecord reads the Kinesis record at the acknowledged position and checks it carries the blog's record.
func storedRecord(t *testing.T, p *pipeline.Pipeline, ack acknowledgement) types.Record {
	t.Helper()
	ctx := t.Context()
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
	return got.Records[0]
}

// checkStatusCountsTheRecord waits until the status line counts the record in and processed.
func checkStatusCountsTheRecord(t *testing.T, p *pipeline.Pipeline) {
	t.Helper()
	var st pipeline.Status
	eventually.Succeeds(t, time.Minute, func() error {
		var err error
		if st, err = p.Status(t.Context()); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if st.RecordsIn < 1 || st.RecordsProcessed < 1 {
			return fmt.Errorf("status %+v; want the record counted in and processed", st)
		}
		return nil
	})
	if st.OpenShards != 2 {
		t.Errorf("status shards = %d; want 2", st.OpenShards)
	}
}

// checkStreamMetrics publishes the stream metrics and checks that CloudWatch holds the stream's real numbers: the
// one Kinesis record the producer put, and its bytes (data and partition key, as Kinesis counts IncomingBytes).
func checkStreamMetrics(t *testing.T, p *pipeline.Pipeline, stored types.Record) {
	t.Helper()
	ctx := t.Context()
	if err := p.PublishMetrics(ctx); err != nil {
		t.Fatalf("publish metrics: %v", err)
	}
	metrics, err := p.Emulators().CloudWatchClient().ListMetrics(ctx, &cloudwatch.ListMetricsInput{
		Namespace: aws.String(pipeline.KinesisNamespace), MetricName: aws.String(pipeline.MetricIncomingRecords),
	})
	if err != nil || len(metrics.Metrics) != 1 || aws.ToString(metrics.Metrics[0].Dimensions[0].Value) != "local-test" {
		t.Fatalf("CloudWatch %s metrics = %+v, %v; want one for the stream", pipeline.MetricIncomingRecords, metrics, err)
	}
	wantBytes := float64(len(stored.Data) + len(aws.ToString(stored.PartitionKey)))
	var records, incomingBytes float64
	eventually.Succeeds(t, time.Minute, func() error {
		if err := p.PublishMetrics(ctx); err != nil {
			return fmt.Errorf("publish metrics: %w", err)
		}
		records = streamMetricSum(ctx, t, p, "local-test", pipeline.MetricIncomingRecords)
		incomingBytes = streamMetricSum(ctx, t, p, "local-test", pipeline.MetricIncomingBytes)
		if records < 1 || incomingBytes < wantBytes {
			return fmt.Errorf("CloudWatch %s = %v, %s = %v; want 1 and %v", pipeline.MetricIncomingRecords, records,
				pipeline.MetricIncomingBytes, incomingBytes, wantBytes)
		}
		return nil
	})
	if records != 1 || incomingBytes != wantBytes {
		t.Errorf("CloudWatch %s = %v, %s = %v; want 1 and %v", pipeline.MetricIncomingRecords, records,
			pipeline.MetricIncomingBytes, incomingBytes, wantBytes)
	}
}

// TestRunWithAMultiLangRecordProcessor runs `make local -multilang`: the blog's record reaches the sample Python
// processor, whose stderr line is in the worker's log, and stopping leaves no process, the processors included.
func TestRunWithAMultiLangRecordProcessor(t *testing.T) {
	// GIVEN the local pipeline running the sample Python processor
	sample, err := filepath.Abs(filepath.Join("..", "multilang", "samples", "record_processor.py"))
	if err != nil {
		t.Fatal(err)
	}
	r := startLocalRun(t, pipeline.Config{Consumers: 1, MultiLangCommand: "python3 " + sample})
	if !strings.Contains(r.out.String(), "MultiLang record processor of python3 "+sample) {
		t.Errorf("banner does not name the processor:\n%s", r.out.String())
	}
	// WHEN the README's request is sent
	postBlogRecord(t, r.p.ProducerURL())
	// THEN the processor wrote it (to stderr, logged by the worker, tagged with the shard)
	eventually.Succeeds(t, time.Minute, func() error {
		logs, _ := filepath.Glob(filepath.Join(r.dir, "logs", "consumer-*.log"))
		for _, path := range logs {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), `"msg":"record processor stderr"`) && strings.Contains(string(b), `This is a testing record`) {
				return nil
			}
		}
		return errors.New("no worker logged the processor's line for the record")
	})
	// WHEN stopped THEN no process is left, and no record processor either
	r.stopAndCheckNothingLeft(t)
	if pids := processesRunning(t, sample); len(pids) > 0 {
		t.Errorf("record processors still running after the stop: %v", pids)
	}
}

// processesRunning returns the pids of the processes whose command line mentions arg (from /proc).
func processesRunning(t *testing.T, arg string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("reads the processes from /proc, which only Linux has")
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), arg) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestRunnerDoesNotLinkTheTestingPackage guards the split of the emulator package: the local runner's binary must
// not carry package testing (and its flags) because it starts emulators.
func TestRunnerDoesNotLinkTheTestingPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for dep := range strings.SplitSeq(string(out), "\n") {
		if dep == "testing" {
			t.Fatal("the local runner links package testing: a package it imports imports testing (use a ...test package)")
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
