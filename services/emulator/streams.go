package emulator

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// activeWait bounds how long a stream or stream consumer may take to become ACTIVE on kinesis-local (about 0.5 s
// when idle, several seconds on a loaded machine).
const activeWait = time.Minute

// CreateStream creates a provisioned stream with shards shards, as the stack does in AWS, and waits until it is
// ACTIVE.
func CreateStream(ctx context.Context, client *kinesis.Client, stream string, shards int) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName:        aws.String(stream),
		ShardCount:        aws.Int32(int32(shards)),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", stream, err)
	}
	return WaitStreamActive(ctx, client, stream)
}

// WaitStreamActive waits until the stream is ACTIVE (after a create or a reshard).
func WaitStreamActive(ctx context.Context, client *kinesis.Client, stream string) error {
	waiter := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, activeWait); err != nil {
		return fmt.Errorf("stream %s did not become active: %w", stream, err)
	}
	return nil
}

// RegisterStreamConsumer registers the fan-out consumer name on the stream, as the stack does in AWS, waits until
// it is ACTIVE and returns its ARN.
func RegisterStreamConsumer(ctx context.Context, client *kinesis.Client, stream, name string) (string, error) {
	sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return "", fmt.Errorf("describe stream %s: %w", stream, err)
	}
	reg, err := client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(name),
	})
	if err != nil {
		return "", fmt.Errorf("register stream consumer %s: %w", name, err)
	}
	arn := aws.ToString(reg.Consumer.ConsumerARN)
	ctx, cancel := context.WithTimeout(ctx, activeWait)
	defer cancel()
	for {
		d, err := client.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		if err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return arn, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("stream consumer %s did not become active: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
