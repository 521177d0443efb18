// Package e2e tests the whole pipeline on this machine: records sent by HTTP to the producer go through Kinesis
// (kinesis-local) to the consumer workers, and every acknowledged record must come out of a worker, also while
// workers are killed, the producer is restarted and the autoscaler reshards the stream. The pipeline is the one
// `make local` runs (package pipeline); the load and the check are the load generator's (services/loadgen).
package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/streamproc/streamproc/lambda/autoscaler/policy"
	"github.com/streamproc/streamproc/services/loadgen/load"
	"github.com/streamproc/streamproc/services/loadgen/verify"
	"github.com/streamproc/streamproc/services/local/pipeline"
)

// failoverTime is the workers' lease failover time in these tests (the default 10 s would only make them longer).
const failoverTime = 3 * time.Second

// deliveryWait bounds the wait for the acknowledged records after the load, generous for a busy 2-core machine.
const deliveryWait = 3 * time.Minute

// startPipeline starts a local pipeline for the test and stops it at the end, checking no process is left.
func startPipeline(t *testing.T, cfg pipeline.Config) *pipeline.Pipeline {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg.Dir = t.TempDir()
	cfg.FailoverTime = failoverTime
	cfg.AutoscaleInterval = -1 // the tests drive the autoscaler themselves
	cfg.DashboardPort = -1
	cfg.BuildOutput = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p, err := pipeline.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the local pipeline: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop the pipeline: %v", err)
		}
	})
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// loadRun is a load sent through a pipeline with its consumers' output followed.
type loadRun struct {
	result   load.Result
	acked    []load.Acked
	follower *verify.Follower
}

// sendAndFollow sends the load cfg to p while following its consumers' output, and returns once the load ends.
func sendAndFollow(t *testing.T, ctx context.Context, p *pipeline.Pipeline, cfg load.Config) *loadRun {
	t.Helper()
	cfg.URL = p.ProducerURL()
	cfg.RunID = fmt.Sprintf("%x", time.Now().UnixNano())
	follower, err := verify.NewFollower(filepath.Join(p.LogDir(), "consumer-*.log"), cfg.RunID)
	if err != nil {
		t.Fatal(err)
	}
	run := &loadRun{follower: follower}
	var mu sync.Mutex
	cfg.OnAck = func(a load.Acked) { mu.Lock(); run.acked = append(run.acked, a); mu.Unlock() }
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- follower.Run(followCtx, 10*time.Millisecond) }()
	run.result, err = load.Run(ctx, cfg, 5*time.Second, func(pr load.Progress) { t.Logf("load: %s", pr) })
	stopFollowing()
	if ferr := <-followed; ferr != nil {
		t.Fatalf("follow the consumers' output: %v", ferr)
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return run
}

// awaitAndCheck waits until every acknowledged record is delivered (or deliveryWait passes) and checks them.
func (r *loadRun) awaitAndCheck(t *testing.T, ctx context.Context) verify.Report {
	t.Helper()
	ids := make([]string, len(r.acked))
	for i, a := range r.acked {
		ids[i] = a.ID
	}
	waitCtx, cancel := context.WithTimeout(ctx, deliveryWait)
	defer cancel()
	start := time.Now()
	missing, err := r.follower.Await(waitCtx, ids, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("follow the consumers' output: %v", err)
	}
	t.Logf("after the load: %d acknowledged records still missing after %s", missing, time.Since(start).Round(time.Millisecond))
	return verify.Check(r.acked, r.follower.Deliveries())
}

// TestPipelineDeliversEveryAcknowledgedRecord sends 10,000 records by HTTP through the local pipeline, with fan-out
// and with polling consumers, and checks that every acknowledged record is processed, in order per key. It logs
// the ingest rate and the end-to-end latency.
func TestPipelineDeliversEveryAcknowledgedRecord(t *testing.T) {
	for _, mode := range []string{pipeline.ReadModeFanOut, pipeline.ReadModePolling} {
		t.Run(mode, func(t *testing.T) {
			// GIVEN the local pipeline: 5 shards, 2 workers
			p := startPipeline(t, pipeline.Config{ReadMode: mode})
			ctx := context.Background()

			// WHEN 10,000 records are sent in batches of 50 by 8 senders, as fast as they are acknowledged
			run := sendAndFollow(t, ctx, p, load.Config{Records: 10_000, Batch: 50, Concurrency: 8})

			// THEN every record was acknowledged and every acknowledged record is processed, in order per key
			if run.result.Acked != 10_000 {
				t.Errorf("%d of 10000 records acknowledged (statuses %v)", run.result.Acked, run.result.Statuses)
			}
			report := run.awaitAndCheck(t, ctx)
			t.Logf("%s: ingest %.0f records/s acknowledged (request p50 %.0f ms, p99 %.0f ms); %s", mode,
				run.result.AckedPerSecond, run.result.LatencyP50Millis, run.result.LatencyP99Millis, report)
			if report.Missing != 0 || report.OutOfOrder != 0 || report.WrongKey != 0 {
				t.Fatalf("%s\n%s", report, report.DescribeKeys(10))
			}
		})
	}
}

// TestPipelineLosesNothingUnderFaults runs a steady load through the fan-out pipeline while a worker is killed with
// SIGKILL, the producer is stopped with SIGTERM and restarted, and the autoscaler reshards the stream; no
// acknowledged record may be missing. Duplicates (re-deliveries after the kill) are counted and reported.
func TestPipelineLosesNothingUnderFaults(t *testing.T) {
	// GIVEN the local pipeline with fan-out consumers, 5 shards, 2 workers
	p := startPipeline(t, pipeline.Config{ReadMode: pipeline.ReadModeFanOut})
	ctx := context.Background()
	const stream = pipeline.DefaultStream

	// WHEN a steady load runs while the faults happen one after another
	faults := make(chan error, 1)
	var resharded policy.Decision
	go func() {
		faults <- func() error {
			time.Sleep(5 * time.Second)
			t.Log("fault: consumer-1 killed with SIGKILL")
			if err := p.KillConsumer("consumer-1"); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			t.Log("fault: a replacement worker consumer-3 starts")
			if err := p.StartConsumer("consumer-3"); err != nil {
				return err
			}
			time.Sleep(4 * time.Second)
			t.Log("fault: producer stopped with SIGTERM and restarted")
			if err := p.RestartProducer(ctx); err != nil {
				return fmt.Errorf("restart the producer: %w", err)
			}
			time.Sleep(3 * time.Second)
			t.Log("fault: the autoscaler sees the stream at 90 % of its write capacity for three minutes and reshards it")
			now := time.Now()
			if err := publishHighLoad(ctx, p, stream, 5, now); err != nil {
				return err
			}
			out, err := p.Autoscale(ctx, now, "e2e test")
			if err != nil {
				return fmt.Errorf("autoscale: %w", err)
			}
			if !out.Executed || out.TargetShardCount <= 5 {
				return fmt.Errorf("autoscaler did not scale up: %+v", out)
			}
			resharded = out.Decision
			return nil
		}()
	}()
	run := sendAndFollow(t, ctx, p, load.Config{Duration: 35 * time.Second, Rate: 300, Batch: 10, Concurrency: 8})
	if err := <-faults; err != nil {
		t.Fatalf("fault injection: %v", err)
	}
	t.Logf("autoscaler: %s %d -> %d shards (%s)", resharded.Action, resharded.CurrentShardCount, resharded.TargetShardCount, resharded.Reason)

	// THEN no acknowledged record is missing; duplicates are reported
	report := run.awaitAndCheck(t, ctx)
	t.Logf("fault run: %d records sent, %d acknowledged, %d refused or unanswered while the producer restarted (statuses %v)",
		run.result.Records, run.result.Acked, run.result.Failed, run.result.Statuses)
	t.Logf("fault run: %s", report)
	t.Logf("fault run: acknowledged records lost: %d; duplicates: %d deliveries of %d records", report.Missing, report.Duplicates, report.DuplicatedRecords)
	if report.Missing != 0 || report.WrongKey != 0 {
		t.Fatalf("%s\n%s", report, report.DescribeKeys(10))
	}
	if report.OutOfOrder != 0 {
		t.Errorf("records out of order within a worker's output: %s\n%s", report, report.DescribeKeys(10))
	}
	if run.result.Acked < 5000 {
		t.Errorf("only %d records acknowledged; the load did not run through the faults", run.result.Acked)
	}
	// THEN records written after the resharding were processed from the new shards
	child := 0
	original := map[string]bool{}
	for i := range 5 {
		original[fmt.Sprintf("shardId-%012d", i)] = true
	}
	for _, d := range run.follower.Deliveries() {
		if !original[d.ShardID] {
			child++
		}
	}
	if child == 0 {
		t.Errorf("no record was processed from a shard created by the resharding")
	}
	t.Logf("fault run: %d deliveries from shards created by the resharding", child)
}

// publishHighLoad puts IncomingBytes at 90 % of shards' write capacity for each of the three minutes before now,
// as Kinesis would report a stream running hot, so the unchanged autoscaler decides on real CloudWatch data.
func publishHighLoad(ctx context.Context, p *pipeline.Pipeline, stream string, shards int, now time.Time) error {
	perMinute := 0.9 * float64(shards*policy.WriteBytesPerShard) * 60
	dims := []cwtypes.Dimension{{Name: aws.String(pipeline.DimensionStreamName), Value: aws.String(stream)}}
	var data []cwtypes.MetricDatum
	for m := 1; m <= 3; m++ {
		at := now.Truncate(time.Minute).Add(-time.Duration(m)*time.Minute + 30*time.Second)
		data = append(data,
			cwtypes.MetricDatum{MetricName: aws.String(pipeline.MetricIncomingBytes), Dimensions: dims, Timestamp: aws.Time(at),
				Unit: cwtypes.StandardUnitBytes, Value: aws.Float64(perMinute)},
			cwtypes.MetricDatum{MetricName: aws.String(pipeline.MetricIncomingRecords), Dimensions: dims, Timestamp: aws.Time(at),
				Unit: cwtypes.StandardUnitCount, Value: aws.Float64(1000)},
		)
	}
	_, err := p.Emulators().CloudWatchClient().PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace: aws.String(pipeline.KinesisNamespace), MetricData: data,
	})
	if err != nil {
		return fmt.Errorf("publish the high load: %w", err)
	}
	return nil
}
