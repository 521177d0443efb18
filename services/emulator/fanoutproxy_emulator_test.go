package emulator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
)

// TestFanOutProxyMakesSubscribeToShardWorkWithTheSDK subscribes to a kinesis-local shard with the unmodified SDK:
// directly it fails on the missing initial-response, through the proxy it receives the records put.
func TestFanOutProxyMakesSubscribeToShardWorkWithTheSDK(t *testing.T) {
	// GIVEN kinesis-local with a stream, a registered consumer and records
	e := emulatortest.StartForTest(t, emulator.Options{Kinesis: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := e.KinesisClient()
	if err := emulator.CreateStream(ctx, kc, "fanout", 1); err != nil {
		t.Fatal(err)
	}
	consumerARN, err := emulator.RegisterStreamConsumer(ctx, kc, "fanout", "proxy-test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("fanout"), PartitionKey: aws.String("k"),
			Data: []byte{'r', byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}

	// WHEN subscribing directly, THEN the SDK fails for want of the initial response (the reason for the proxy)
	if _, err := subscribeForThree(ctx, kc, consumerARN); err == nil || !strings.Contains(err.Error(), "initial-response") {
		t.Fatalf("direct SubscribeToShard error = %v; want the missing initial-response (has kinesis-local changed?)", err)
	}

	// WHEN subscribing through the proxy (after the emulator's resubscribe hold-off)
	proxy, err := emulator.StartFanOutProxy(e.KinesisEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	pc := kinesis.NewFromConfig(e.AWSConfig(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	var got []string
	var subscribeErr error
	waitErr := eventually.Within(30*time.Second, func() error {
		got, subscribeErr = subscribeForThree(ctx, pc, consumerARN)
		var inUse *types.ResourceInUseException
		if errors.As(subscribeErr, &inUse) {
			return subscribeErr // kinesis-local holds the refused subscription for a second or two
		}
		return nil
	})
	// THEN the records arrive
	if err := errors.Join(waitErr, subscribeErr); err != nil {
		t.Fatalf("SubscribeToShard through the proxy: %v", err)
	}
	if strings.Join(got, ",") != "r0,r1,r2" {
		t.Errorf("records = %v; want r0,r1,r2", got)
	}
}

// subscribeForThree subscribes to the first shard from its start and returns the data of the first three records.
func subscribeForThree(ctx context.Context, client *kinesis.Client, consumerARN string) ([]string, error) {
	out, err := client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(consumerARN), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
	})
	if err != nil {
		return nil, err
	}
	stream := out.GetStream()
	defer stream.Close()
	var got []string
	for ev := range stream.Events() {
		if e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
			for _, r := range e.Value.Records {
				got = append(got, string(r.Data))
			}
			if len(got) >= 3 {
				return got, nil
			}
		}
	}
	return got, stream.Err()
}
