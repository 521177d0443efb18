package kcl

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kpl"
)

// noopProcessor accepts every batch.
type noopProcessor struct{ records int }

func (p *noopProcessor) Initialize(context.Context, InitializeInput) error { return nil }
func (p *noopProcessor) ProcessRecords(_ context.Context, in ProcessRecordsInput) error {
	p.records += len(in.Records)
	return nil
}
func (p *noopProcessor) LeaseLost(context.Context)                                       {}
func (p *noopProcessor) ShardEnded(context.Context, ShardEndedInput) error               { return nil }
func (p *noopProcessor) ShutdownRequested(context.Context, ShutdownRequestedInput) error { return nil }

// BenchmarkDeaggregateAndDispatch measures the per-record path of a shard consumer, from an in-memory batch of KPL
// aggregates (500 user records of 100 bytes each) to a no-op processor: deaggregation, resume filter, hash key range
// check, and the processor call with its panic guard. It reports user records per second (one core) and
// allocations per user record.
//
//	go test ./services/kcl/ -run '^$' -bench DeaggregateAndDispatch -benchtime 2s
func BenchmarkDeaggregateAndDispatch(b *testing.B) {
	const perAggregate, aggregates, size = 500, 20, 100
	var raw []ktypes.Record
	var agg kpl.Aggregator
	now := time.Now()
	for i := range aggregates {
		agg.Reset()
		for j := range perAggregate {
			data := make([]byte, size)
			copy(data, fmt.Sprintf("record-%d-%d", i, j))
			agg.Add("key-"+strconv.Itoa(j%50), "", data)
		}
		raw = append(raw, ktypes.Record{
			SequenceNumber: aws.String(fmt.Sprintf("4959%052d", i)), PartitionKey: aws.String("key-0"),
			Data: agg.AppendEncoded(nil), ApproximateArrivalTimestamp: &now,
		})
	}
	w, err := New(Config{StreamName: "s", LeaseTableName: "t", WorkerID: "w", NewProcessor: func() Processor { return &noopProcessor{} },
		Logger: slog.New(slog.DiscardHandler)}, nopKinesis{}, nopDynamo{})
	if err != nil {
		b.Fatal(err)
	}
	proc := &noopProcessor{}
	builder := &recordBuilder{shardID: "shardId-000000000000",
		rng: newHashRange("0", "340282366920938463463374607431768211455")}
	cp := &checkpointer{w: w, h: &heldLease{}}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		records, _ := builder.build(raw, "", 0, nil)
		if err := w.callProcessor(ctx, log, "process records", func(ctx context.Context) error {
			return proc.ProcessRecords(ctx, ProcessRecordsInput{Records: records, Checkpointer: cp})
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perOp := perAggregate * aggregates
	if proc.records != b.N*perOp {
		b.Fatalf("processed %d records, want %d", proc.records, b.N*perOp)
	}
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
		records, _ := builder.build(raw, "", 0, nil)
		_ = proc.ProcessRecords(ctx, ProcessRecordsInput{Records: records, Checkpointer: cp})
	}))/float64(perOp), "allocs/record")
}

// BenchmarkFailover measures, with the default settings (failover 10 s, renewal every 3.3 s), the seconds from a
// worker's death (cancelled without releasing) to all its shards being read again by the surviving worker. Each
// iteration takes about 10-15 s:
//
//	go test ./services/kcl/ -run '^$' -bench Failover -benchtime 1x
func BenchmarkFailover(b *testing.B) {
	kc := testKinesis(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		stream := createStream(b, kc, 4)
		table := uniqueName("app")
		c := newCollector()
		cfg := func(id string) Config {
			return Config{StreamName: stream, LeaseTableName: table, WorkerID: id, CreateLeaseTable: true, Logger: testLogger()}
		}
		a := startWorker(b, cfg("worker-a"), kc, c, nil)
		waitHolds(b, a.w, 4, 30*time.Second)
		bw := startWorker(b, cfg("worker-b"), kc, c, nil)
		// Let worker-b watch the leases' counters move before the kill, as a long-running peer would: a deliberate
		// pause of two renewal intervals, not a wait for a condition.
		time.Sleep(DefaultFailoverTime / 3 * 2)
		killed := time.Now()
		a.kill(b)
		waitHolds(b, bw.w, 4, time.Minute)
		total += time.Since(killed)
		bw.kill(b)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}

// nopKinesis and nopDynamo satisfy New for benchmarks that never call them.
type nopKinesis struct{ KinesisAPI }
type nopDynamo struct{ DynamoDBAPI }

// aggregatedRecords returns one aggregated Kinesis record per sequence number, each of n user records.
func aggregatedRecords(t testing.TB, seqs []string, n int) []ktypes.Record {
	t.Helper()
	var out []ktypes.Record
	for _, seq := range seqs {
		var agg kpl.Aggregator
		for j := range n {
			agg.Add(fmt.Sprint("k", j), "", []byte(fmt.Sprintf("%s-%d", seq, j)))
		}
		out = append(out, ktypes.Record{SequenceNumber: aws.String(seq), PartitionKey: aws.String("k0"), Data: agg.AppendEncoded(nil)})
	}
	return out
}
