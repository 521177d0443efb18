// Package kinesisfake is an in-memory Kinesis stream with the two calls the
// producer engine makes, ListShards and PutRecords, and a configurable
// latency per call. It stands in for Kinesis where a real endpoint would
// measure the endpoint instead of the producer (the ingest benchmark).
//
// Records are routed like Kinesis does: by explicit hash key, else by the MD5
// of the partition key as a 128-bit big-endian integer, into one of the
// stream's evenly split shards; each shard numbers its records. Only counts
// are kept, not data, so long runs use no memory.
package kinesisfake

import (
	"cmp"
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Kinesis limits the fake enforces on PutRecords.
const (
	maxEntries      = 500
	maxRequestBytes = 5 << 20
	maxRecordBytes  = 1 << 20
)

// Config describes the fake stream. The zero value is a one-shard stream
// named "stream" that answers at once.
type Config struct {
	// StreamName is the only stream the fake knows. Default: "stream".
	StreamName string
	// Shards is the number of open shards, splitting the hash key space
	// evenly. Default: 1.
	Shards int
	// Latency delays every call, like a round trip to Kinesis. Default: 0.
	Latency time.Duration
}

// Stream is the fake. It is safe for concurrent use.
type Stream struct {
	cfg    Config
	shards []shard

	mu      sync.Mutex
	stats   Stats
	nextSeq []uint64
}

type shard struct {
	id         string
	start, end *big.Int
}

// Stats counts what the fake received.
type Stats struct {
	// PutRecordsCalls counts PutRecords calls.
	PutRecordsCalls int
	// Records counts Kinesis records (aggregates count once).
	Records int
	// Bytes counts the data and partition key bytes of those records.
	Bytes int
}

// New returns a fake stream.
func New(cfg Config) (*Stream, error) {
	cfg.StreamName = cmp.Or(cfg.StreamName, "stream")
	if cfg.Shards < 0 || cfg.Latency < 0 {
		return nil, fmt.Errorf("kinesisfake: shards %d and latency %v must not be negative", cfg.Shards, cfg.Latency)
	}
	cfg.Shards = cmp.Or(cfg.Shards, 1)
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	width := new(big.Int).Div(space, big.NewInt(int64(cfg.Shards)))
	s := &Stream{cfg: cfg, nextSeq: make([]uint64, cfg.Shards)}
	for i := range cfg.Shards {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == cfg.Shards-1 {
			end = new(big.Int).Sub(space, big.NewInt(1))
		}
		s.shards = append(s.shards, shard{id: fmt.Sprintf("shardId-%012d", i), start: start, end: end})
	}
	return s, nil
}

// Stats returns the counts so far.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ListShards lists every shard in one page.
func (s *Stream) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	if in.NextToken == nil && aws.ToString(in.StreamName) != s.cfg.StreamName {
		return nil, &types.ResourceNotFoundException{Message: aws.String("stream " + aws.ToString(in.StreamName) + " not found")}
	}
	out := &kinesis.ListShardsOutput{}
	for _, sh := range s.shards {
		out.Shards = append(out.Shards, types.Shard{
			ShardId: aws.String(sh.id),
			HashKeyRange: &types.HashKeyRange{
				StartingHashKey: aws.String(sh.start.String()),
				EndingHashKey:   aws.String(sh.end.String()),
			},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		})
	}
	return out, nil
}

// PutRecords routes every entry to its shard and numbers it.
func (s *Stream) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	if aws.ToString(in.StreamName) != s.cfg.StreamName {
		return nil, &types.ResourceNotFoundException{Message: aws.String("stream " + aws.ToString(in.StreamName) + " not found")}
	}
	if n := len(in.Records); n == 0 || n > maxEntries {
		return nil, &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("%d records: want 1-%d", n, maxEntries))}
	}
	shardOf := make([]int, len(in.Records))
	total := 0
	for i, r := range in.Records {
		size := len(r.Data) + len(aws.ToString(r.PartitionKey))
		if size > maxRecordBytes || aws.ToString(r.PartitionKey) == "" {
			return nil, &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("record %d: %d bytes or empty partition key", i, size))}
		}
		total += size
		idx, err := s.route(r)
		if err != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("record %d: %v", i, err))}
		}
		shardOf[i] = idx
	}
	if total > maxRequestBytes {
		return nil, &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("request of %d bytes: limit %d", total, maxRequestBytes))}
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	s.mu.Lock()
	s.stats.PutRecordsCalls++
	s.stats.Records += len(in.Records)
	s.stats.Bytes += total
	for i, idx := range shardOf {
		s.nextSeq[idx]++
		out.Records[i] = types.PutRecordsResultEntry{
			ShardId:        aws.String(s.shards[idx].id),
			SequenceNumber: aws.String(strconv.FormatUint(s.nextSeq[idx], 10)),
		}
	}
	s.mu.Unlock()
	out.FailedRecordCount = aws.Int32(0)
	return out, nil
}

// route finds the shard of one entry.
func (s *Stream) route(r types.PutRecordsRequestEntry) (int, error) {
	var h *big.Int
	if ehk := aws.ToString(r.ExplicitHashKey); ehk != "" {
		var ok bool
		if h, ok = new(big.Int).SetString(ehk, 10); !ok || h.Sign() < 0 || h.Cmp(s.shards[len(s.shards)-1].end) > 0 {
			return 0, fmt.Errorf("explicit hash key %q out of range", ehk)
		}
	} else {
		sum := md5.Sum([]byte(aws.ToString(r.PartitionKey)))
		h = new(big.Int).SetBytes(sum[:])
	}
	for i, sh := range s.shards {
		if h.Cmp(sh.end) <= 0 {
			return i, nil
		}
	}
	return 0, fmt.Errorf("hash key %s in no shard", h) // unreachable: the last shard ends at 2^128-1
}

// wait sleeps for the configured latency unless ctx ends first.
func (s *Stream) wait(ctx context.Context) error {
	if s.cfg.Latency == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(s.cfg.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
