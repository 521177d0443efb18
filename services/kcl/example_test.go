package kcl_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/kcl"
)

// Example reads a stream with one function per batch and stops gracefully. In a service, the clients come from
// the AWS configuration (kinesis.NewFromConfig, dynamodb.NewFromConfig), ctx from signal.NotifyContext for SIGTERM,
// and the lease table from the stack (CreateLeaseTable is for local runs).
func Example() {
	kc, ddb, stream := exampleStream("orders", "alpha", "beta", "gamma")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	var mu sync.Mutex
	var seen []string
	worker, err := kcl.New(kcl.Config{
		StreamName:       stream,
		LeaseTableName:   "orders-app",
		WorkerID:         "worker-1",
		CreateLeaseTable: true,
		// One function per batch: each batch is checkpointed once it returns nil.
		NewProcessor: kcl.ProcessorFunc(func(ctx context.Context, records []kcl.Record) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range records {
				seen = append(seen, string(r.Data))
			}
			if len(seen) == 3 {
				stop() // as SIGTERM would: Run finishes this batch, checkpoints and releases the leases
			}
			return nil
		}),
		Logger: slog.New(slog.DiscardHandler),
	}, kc, ddb)
	if err != nil {
		log.Fatal(err)
	}
	if err := worker.Run(ctx); err != nil {
		log.Fatal(err)
	}
	slices.Sort(seen)
	fmt.Println(seen)
	// Output: [alpha beta gamma]
}

// countingProcessor is a Processor that checkpoints every 100 records rather than every batch, and at the
// shard's end and at shutdown.
type countingProcessor struct {
	shard     string
	sinceLast int
	total     *atomic.Int64
}

func (p *countingProcessor) Initialize(_ context.Context, in kcl.InitializeInput) error {
	p.shard = in.ShardID
	return nil
}

func (p *countingProcessor) ProcessRecords(ctx context.Context, in kcl.ProcessRecordsInput) error {
	p.total.Add(int64(len(in.Records)))
	p.sinceLast += len(in.Records)
	if p.sinceLast < 100 {
		return nil
	}
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err // kcl.ErrLeaseLost: the shard is another worker's now
	}
	p.sinceLast = 0
	return nil
}

func (p *countingProcessor) LeaseLost(context.Context) {}

func (p *countingProcessor) ShardEnded(ctx context.Context, in kcl.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx) // SHARD_END: the shard's children are read next
}

func (p *countingProcessor) ShutdownRequested(ctx context.Context, in kcl.ShutdownRequestedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

// ExampleProcessor implements the Processor interface, for a processor that chooses when to checkpoint; the
// worker is stopped with Shutdown.
func ExampleProcessor() {
	kc, ddb, stream := exampleStream("clicks", "one", "two")
	var total atomic.Int64
	worker, err := kcl.New(kcl.Config{
		StreamName:       stream,
		LeaseTableName:   "clicks-app",
		WorkerID:         "worker-1",
		CreateLeaseTable: true,
		NewProcessor:     func() kcl.Processor { return &countingProcessor{total: &total} },
		Logger:           slog.New(slog.DiscardHandler),
	}, kc, ddb)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- worker.Run(context.Background()) }()
	for total.Load() < 2 { // wait for the records (an example's shortcut; a service runs until it is stopped)
		time.Sleep(100 * time.Millisecond)
	}
	if err := worker.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("records:", total.Load(), "run:", <-done)
	// Output: records: 2 run: <nil>
}

// exampleStream creates a one-shard stream on the local emulators, puts records into it, and returns clients for
// it. In AWS, the stream is the stack's.
func exampleStream(name string, records ...string) (*kinesis.Client, *dynamodb.Client, string) {
	e, err := kcl.SharedEmulators.Start()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	stream := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	kc := e.KinesisClient()
	if err := emulator.CreateStream(ctx, kc, stream, 1); err != nil {
		log.Fatal(err)
	}
	for _, r := range records {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(r), Data: []byte(r)}); err != nil {
			log.Fatal(errors.Join(errors.New("put"), err))
		}
	}
	return kc, e.DynamoDBClient(), stream
}
