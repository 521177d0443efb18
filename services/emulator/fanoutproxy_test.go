package emulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestFanOutProxyChangesOnlySuccessfulSubscribeToShard checks the proxy against a recording upstream: the event is
// prepended to a 200 SubscribeToShard response and nothing else is altered.
func TestFanOutProxyChangesOnlySuccessfulSubscribeToShard(t *testing.T) {
	tests := map[string]struct {
		target     string
		status     int
		wantPrefix bool
	}{
		"SubscribeToShard 200":       {target: "Kinesis_20131202.SubscribeToShard", status: 200, wantPrefix: true},
		"SubscribeToShard error":     {target: "Kinesis_20131202.SubscribeToShard", status: 400},
		"GetRecords":                 {target: "Kinesis_20131202.GetRecords", status: 200},
		"PutRecords server error":    {target: "Kinesis_20131202.PutRecords", status: 500},
		"no target (health request)": {status: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN an upstream that echoes the request body and target
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Seen-Target", r.Header.Get("X-Amz-Target"))
				w.WriteHeader(tc.status)
				w.Write(append([]byte("echo:"), body...))
			}))
			defer upstream.Close()
			proxy, err := StartFanOutProxy(upstream.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()

			// WHEN a request goes through the proxy
			req, _ := http.NewRequest(http.MethodPost, proxy.URL+"/", strings.NewReader(`{"k":1}`))
			if tc.target != "" {
				req.Header.Set("X-Amz-Target", tc.target)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			// THEN status, headers and body pass through, with the event in front only where it belongs
			if resp.StatusCode != tc.status || resp.Header.Get("X-Seen-Target") != tc.target {
				t.Fatalf("status %d target %q; want %d %q", resp.StatusCode, resp.Header.Get("X-Seen-Target"), tc.status, tc.target)
			}
			rest := got
			if tc.wantPrefix {
				msg, err := eventstream.NewDecoder().Decode(bytes.NewReader(got), nil)
				if err != nil {
					t.Fatalf("response does not start with an event-stream message: %v", err)
				}
				if h := msg.Headers.Get(":event-type"); h == nil || h.String() != "initial-response" {
					t.Fatalf("first event type = %v; want initial-response", h)
				}
				event, _ := initialResponseEvent()
				rest = got[len(event):]
			}
			if string(rest) != `echo:{"k":1}` {
				t.Errorf("body after the proxy's part = %q; want the upstream's own body", rest)
			}
		})
	}
}

// TestFanOutProxyMakesSubscribeToShardWorkWithTheSDK subscribes to a kinesis-local shard with the unmodified SDK:
// directly it fails on the missing initial-response, through the proxy it receives the records put.
func TestFanOutProxyMakesSubscribeToShardWorkWithTheSDK(t *testing.T) {
	// GIVEN kinesis-local with a stream, a registered consumer and records
	e := StartForTest(t, Options{Kinesis: true})
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
	proxy, err := StartFanOutProxy(e.KinesisEndpoint)
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

func TestFanOutProxyAnswersBadGatewayWhenTheEmulatorIsDown(t *testing.T) {
	// GIVEN a proxy whose emulator has gone
	upstream := httptest.NewServer(http.NotFoundHandler())
	target := upstream.URL
	upstream.Close()
	proxy, err := StartFanOutProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// WHEN a request arrives, THEN it gets a 502 (the SDK retries it as a server error)
	resp, err := http.Post(proxy.URL+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d; want 502", resp.StatusCode)
	}
}
