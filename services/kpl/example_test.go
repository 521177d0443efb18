package kpl_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kpl"
)

// emulators serve the runnable examples.
var emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true}}

func TestMain(m *testing.M) { os.Exit(emulators.Run(m)) }

// ExampleProducer_Put sends one record and waits until Kinesis holds it. In a service, the client comes from the
// AWS configuration (kinesis.NewFromConfig) and the stream from the stack.
func ExampleProducer_Put() {
	kc, stream := exampleStream("orders")
	ctx := context.Background()
	producer, err := kpl.New(kpl.Config{StreamName: stream, Logger: slog.New(slog.DiscardHandler)}, kc)
	if err != nil {
		log.Fatal(err)
	}
	if err := producer.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer producer.Close(ctx) // flushes what is buffered

	res, err := producer.Put(ctx, kpl.Record{PartitionKey: "customer-42", Data: []byte(`{"total": 12.5}`)})
	if err != nil {
		log.Fatal(err) // kpl.ErrBufferFull (back-pressure), kpl.ErrRecordExpired, an *InvalidRecordError, ...
	}
	fmt.Println(res.ShardID, strings.HasPrefix(res.SequenceNumber, "49"))
	// Output: shardId-000000000000 true
}

// ExampleProducer_PutAsync sends many records without waiting for each: they are aggregated per shard (KPL
// format) and batched into PutRecords calls; each callback gets its record's outcome.
func ExampleProducer_PutAsync() {
	kc, stream := exampleStream("clicks")
	ctx := context.Background()
	producer, err := kpl.New(kpl.Config{StreamName: stream, Logger: slog.New(slog.DiscardHandler)}, kc)
	if err != nil {
		log.Fatal(err)
	}
	if err := producer.Start(ctx); err != nil {
		log.Fatal(err)
	}
	var acknowledged, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		err := producer.PutAsync(kpl.Record{Data: fmt.Appendf(nil, "click-%d", i)}, func(r kpl.Result) {
			defer wg.Done()
			if r.Err != nil {
				failed.Add(1)
				return
			}
			acknowledged.Add(1)
		})
		if err != nil { // refused at once, for example kpl.ErrBufferFull: slow down and retry
			wg.Done()
			log.Fatal(err)
		}
	}
	if err := producer.Close(ctx); err != nil { // sends what is left, then stops
		log.Fatal(err)
	}
	wg.Wait()
	fmt.Println("acknowledged:", acknowledged.Load(), "failed:", failed.Load())
	// Output: acknowledged: 1000 failed: 0
}

// exampleStream creates a one-shard stream on the local emulator and returns a client for it.
func exampleStream(name string) (*kinesis.Client, string) {
	e, err := emulators.Start()
	if err != nil {
		log.Fatal(err)
	}
	stream := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	if err := emulator.CreateStream(context.Background(), e.KinesisClient(), stream, 1); err != nil {
		log.Fatal(err)
	}
	return e.KinesisClient(), stream
}
