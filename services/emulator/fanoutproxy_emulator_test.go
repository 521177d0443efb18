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
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("fanout"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if err := kinesis.NewStreamExistsWaiter(kc, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond }).
		Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("fanout")}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("fanout")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("proxy-test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
		if err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("consumer never became active")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 3 {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("fanout"), PartitionKey: aws.String("k"),
			Data: []byte{'r', byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	subscribe := func(client *kinesis.Client) ([]string, error) {
		out, err := client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
			ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
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

	// WHEN subscribing directly, THEN the SDK fails for want of the initial response (the reason for the proxy)
	if _, err := subscribe(kc); err == nil || !strings.Contains(err.Error(), "initial-response") {
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
	for {
		got, err = subscribe(pc)
		var inUse *types.ResourceInUseException
		if err == nil || !errors.As(err, &inUse) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// THEN the records arrive
	if err != nil {
		t.Fatalf("SubscribeToShard through the proxy: %v", err)
	}
	if strings.Join(got, ",") != "r0,r1,r2" {
		t.Errorf("records = %v; want r0,r1,r2", got)
	}
}
