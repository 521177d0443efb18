// Package streamtest creates Kinesis streams for the autoscaler's emulator tests and waits, with package eventually,
// until a stream is ACTIVE: after it is created, and after a resharding operation.
package streamtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
)

// ActiveTimeout is how long the tests wait for a stream (WaitActive) or a fan-out consumer to become ACTIVE; the
// emulator tests configure kinesis-local to finish creating and resharding within a second.
const ActiveTimeout = 30 * time.Second

// Create creates a provisioned stream with the given shards and waits until it is ACTIVE; it fails tb otherwise.
func Create(ctx context.Context, tb testing.TB, client *kinesis.Client, name string, shards int) {
	tb.Helper()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		tb.Fatalf("create stream %s: %v", name, err)
	}
	WaitActive(ctx, tb, client, name)
}

// WaitActive waits until the stream is ACTIVE and fails tb when it is not within ActiveTimeout.
func WaitActive(ctx context.Context, tb testing.TB, client *kinesis.Client, name string) {
	tb.Helper()
	eventually.Succeeds(tb, ActiveTimeout, func() error {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		if status := out.StreamDescriptionSummary.StreamStatus; status != types.StreamStatusActive {
			return fmt.Errorf("stream %s is %s, want ACTIVE", name, status)
		}
		return nil
	})
}
