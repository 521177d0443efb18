package multilang_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/multilang"
)

// benchBatch is one read's worth of deaggregated user records: 1,000 records of 100 bytes, as 10 KPL aggregates
// of 100 give them.
func benchBatch() []kcl.Record {
	records := make([]kcl.Record, 1000)
	data := make([]byte, 100)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	now := time.Now()
	for i := range records {
		records[i] = kcl.Record{ShardID: "shardId-000000000000", SequenceNumber: fmt.Sprintf("4959033827149025660855969253836157109592157598913658%04d", i/100),
			SubSequenceNumber: int64(i % 100), PartitionKey: fmt.Sprintf("key-%d", i%97), Data: data, ApproximateArrivalTimestamp: now}
	}
	return records
}

// benchBytes keeps the in-process processor's work from being optimised away.
var benchBytes int

// acceptingCheckpointer accepts every checkpoint, as a held lease's does, without DynamoDB.
type acceptingCheckpointer struct{}

func (acceptingCheckpointer) Checkpoint(context.Context) error                  { return nil }
func (acceptingCheckpointer) CheckpointAt(context.Context, string, int64) error { return nil }

// BenchmarkProcessRecords measures user records per second given to one shard's processor: in process (a Go
// function), and through the MultiLang pipe to a Node processor written with aws-kcl and to the project's Python
// processor, each checkpointing every batch. Run it with
//
//	go test -run '^$' -bench ProcessRecords -benchtime 20x ./services/multilang
//
// and read records/s; the Go processor's figure, measured in the same run, is the baseline.
func BenchmarkProcessRecords(b *testing.B) {
	node, _ := filepath.Abs(filepath.Join("testdata", "kcl_processor.js"))
	python, _ := filepath.Abs(filepath.Join("testdata", "processor.py"))
	tests := []struct {
		name         string
		newProcessor func() (kcl.Processor, error)
	}{
		{"go in process", func() (kcl.Processor, error) {
			return kcl.ProcessorFunc(func(_ context.Context, records []kcl.Record) error {
				for _, r := range records {
					benchBytes += len(r.Data) // touch every record, as the child processors do
				}
				return nil
			})(), nil
		}},
		{"node aws-kcl", multilangProcessor("node", node)},
		{"python", multilangProcessor("python3", python)},
	}
	records := benchBatch()
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			p, err := tc.newProcessor()
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := p.Initialize(ctx, kcl.InitializeInput{ShardID: "shardId-000000000000", Checkpoint: kcl.CheckpointTrimHorizon}); err != nil {
				b.Fatal(err)
			}
			in := kcl.ProcessRecordsInput{Records: records, Checkpointer: acceptingCheckpointer{}}
			b.ResetTimer()
			for b.Loop() {
				if err := p.ProcessRecords(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(records))/b.Elapsed().Seconds(), "records/s")
			b.StopTimer()
			_ = p.ShutdownRequested(ctx, kcl.ShutdownRequestedInput{Checkpointer: acceptingCheckpointer{}})
		})
	}
}

// multilangProcessor returns a MultiLang processor running command, with no files written (the processors only
// count and checkpoint).
func multilangProcessor(command ...string) func() (kcl.Processor, error) {
	return func() (kcl.Processor, error) {
		newProcessor, err := multilang.NewProcessorFunc(multilang.Config{Command: command, Env: []string{"RECORDS_FILE=", "EVENTS_FILE="},
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return nil, err
		}
		return newProcessor(), nil
	}
}
