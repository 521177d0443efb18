package kinesisfake

import (
	"context"
	"crypto/md5"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestPutRecordsRoutesLikeKinesis(t *testing.T) {
	s, err := New(Config{StreamName: "s", Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	shards, err := s.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 4 || aws.ToString(shards.Shards[3].HashKeyRange.EndingHashKey) != "340282366920938463463374607431768211455" {
		t.Fatalf("shards = %+v", shards.Shards)
	}
	sum := md5.Sum([]byte("user-1"))
	pkShard := new(big.Int).SetBytes(sum[:])
	pkShard.Div(pkShard, new(big.Int).Lsh(big.NewInt(1), 126)) // 4 even shards: the top two bits
	out, err := s.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("user-1"), Data: []byte("a")},
		{PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("0"), Data: []byte("b")},
		{PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("c")},
		{PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("0"), Data: []byte("d")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ shard, seq string }{
		{aws.ToString(shards.Shards[pkShard.Int64()].ShardId), ""},
		{"shardId-000000000000", ""}, {"shardId-000000000003", ""}, {"shardId-000000000000", ""},
	}
	for i, r := range out.Records {
		if aws.ToString(r.ShardId) != want[i].shard {
			t.Errorf("record %d in %s, want %s", i, aws.ToString(r.ShardId), want[i].shard)
		}
	}
	if a, b := aws.ToString(out.Records[1].SequenceNumber), aws.ToString(out.Records[3].SequenceNumber); a == b {
		t.Errorf("two records of one shard share sequence number %s", a)
	}
	if st := s.Stats(); st.PutRecordsCalls != 1 || st.Records != 4 || st.Bytes != 4+6+3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestPutRecordsRefusesWhatKinesisRefuses(t *testing.T) {
	s, err := New(Config{StreamName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	entry := types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: []byte("x")}
	tests := map[string]struct {
		in   *kinesis.PutRecordsInput
		want any
	}{
		"unknown stream": {&kinesis.PutRecordsInput{StreamName: aws.String("t"), Records: []types.PutRecordsRequestEntry{entry}}, new(*types.ResourceNotFoundException)},
		"no records":     {&kinesis.PutRecordsInput{StreamName: aws.String("s")}, new(*types.InvalidArgumentException)},
		"501 records":    {&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: make([]types.PutRecordsRequestEntry, 501)}, new(*types.InvalidArgumentException)},
		"no key":         {&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x")}}}, new(*types.InvalidArgumentException)},
		"record too big": {&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: make([]byte, 1<<20)}}}, new(*types.InvalidArgumentException)},
		"bad hash key":   {&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("-1"), Data: []byte("x")}}}, new(*types.InvalidArgumentException)},
		"request too big": {&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("k"), Data: []byte(strings.Repeat("x", 1<<20-1))}, {PartitionKey: aws.String("k"), Data: []byte(strings.Repeat("x", 1<<20-1))},
			{PartitionKey: aws.String("k"), Data: []byte(strings.Repeat("x", 1<<20-1))}, {PartitionKey: aws.String("k"), Data: []byte(strings.Repeat("x", 1<<20-1))},
			{PartitionKey: aws.String("k"), Data: []byte(strings.Repeat("x", 1<<20-1))}, {PartitionKey: aws.String("k"), Data: []byte("xx")},
		}}, new(*types.InvalidArgumentException)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := s.PutRecords(t.Context(), tc.in)
			if err == nil || !errors.As(err, tc.want) {
				t.Fatalf("error = %v, want %T", err, tc.want)
			}
		})
	}
	if st := s.Stats(); st.PutRecordsCalls != 0 {
		t.Errorf("refused calls counted: %+v", st)
	}
}

func TestLatencyEndsWithContext(t *testing.T) {
	s, err := New(Config{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("stream")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}
