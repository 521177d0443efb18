// Package ingesttest helps test the ingest service against kinesis-local:
// FaultTransport injects the faults no emulator produces, ReadStream reads a
// stream back, every shard from TRIM_HORIZON,
// every record deaggregated with kpl.Deaggregate and every user record's
// hash key checked against the range of its shard (the check a KCL consumer
// makes before it keeps a record).
package ingesttest

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kpl"
)

// Shard is one shard of the stream and its hash key range.
type Shard struct {
	// ID is the shard's ID.
	ID string
	// Start and End are the shard's first and last hash keys (inclusive).
	Start, End *big.Int
}

// Contains reports whether hash key h lies in the shard's range.
func (s Shard) Contains(h *big.Int) bool { return h.Cmp(s.Start) >= 0 && h.Cmp(s.End) <= 0 }

// Record is one user record read back, with where it was found.
type Record struct {
	// ShardID is the shard the record was read from.
	ShardID string
	// SequenceNumber is the Kinesis record's sequence number (shared by every record of one aggregate).
	SequenceNumber string
	// SubSequenceNumber is the record's position inside its aggregate; 0 when it was not aggregated.
	SubSequenceNumber int64
	// PartitionKey is the user record's partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, empty when it has none.
	ExplicitHashKey string
	// Data is the user record's payload (a copy).
	Data []byte
	// Aggregated tells whether the record came out of a KPL aggregate.
	Aggregated bool
}

// Location identifies a user record the way the producer acknowledges it.
type Location struct {
	// ShardID is the shard the record is in.
	ShardID string
	// SequenceNumber is the Kinesis record's sequence number.
	SequenceNumber string
	// SubSequenceNumber is the record's position inside its aggregate; 0 when it was not aggregated.
	SubSequenceNumber int64
}

// Stream is everything read back from a stream.
type Stream struct {
	// Shards are every shard of the stream, open and closed, in ListShards order.
	Shards []Shard
	// Records are the user records a KCL consumer keeps: those whose hash
	// key lies in their shard's range.
	Records []Record
	// OutOfRange are the user records a KCL consumer drops: aggregated
	// with a hash key outside the range of the shard holding them (after a
	// reshard the producer re-puts such records where they belong).
	OutOfRange   []Record
	KinesisCount int            // Kinesis records (an aggregate counts once)
	PerShard     map[string]int // user records per shard
}

// At indexes the records by location.
func (s *Stream) At() map[Location]Record {
	m := make(map[Location]Record, len(s.Records))
	for _, r := range s.Records {
		m[Location{r.ShardID, r.SequenceNumber, r.SubSequenceNumber}] = r
	}
	return m
}

// Data returns the set of the data of the records a KCL consumer keeps (Records).
func (s *Stream) Data() map[string]bool {
	m := make(map[string]bool, len(s.Records))
	for _, r := range s.Records {
		m[string(r.Data)] = true
	}
	return m
}

// HashKey is the hash key Kinesis and the KCL use for a user record: its
// explicit hash key, else the MD5 of its partition key as a 128-bit
// big-endian integer.
func HashKey(partitionKey, explicitHashKey string) (*big.Int, error) {
	if explicitHashKey != "" {
		h, ok := new(big.Int).SetString(explicitHashKey, 10)
		if !ok {
			return nil, fmt.Errorf("explicit hash key %q is not a decimal", explicitHashKey)
		}
		return h, nil
	}
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:]), nil
}

// ReadStream lists every shard (open and closed), reads each from
// TRIM_HORIZON to its current end and deaggregates every record. User
// records whose hash key lies outside their shard's range are returned in
// OutOfRange, not in Records.
func ReadStream(ctx context.Context, client *kinesis.Client, name string) (*Stream, error) {
	out := &Stream{PerShard: map[string]int{}}
	in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
	for {
		page, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", name, err)
		}
		for _, s := range page.Shards {
			start, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			end, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
			if start == nil || end == nil {
				return nil, fmt.Errorf("shard %s: bad hash key range", aws.ToString(s.ShardId))
			}
			out.Shards = append(out.Shards, Shard{ID: aws.ToString(s.ShardId), Start: start, End: end})
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	var errs []error
	for _, sh := range out.Shards {
		if err := readShard(ctx, client, name, sh, out, &errs); err != nil {
			return nil, err
		}
	}
	return out, errors.Join(errs...)
}

func readShard(ctx context.Context, client *kinesis.Client, name string, sh Shard, out *Stream, errs *[]error) error {
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(name), ShardId: aws.String(sh.ID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return fmt.Errorf("shard iterator of %s: %w", sh.ID, err)
	}
	iter := it.ShardIterator
	var users []kpl.UserRecord
	for iter != nil {
		page, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			return fmt.Errorf("get records of %s: %w", sh.ID, err)
		}
		for _, r := range page.Records {
			out.KinesisCount++
			users, err = kpl.Deaggregate(users[:0], aws.ToString(r.PartitionKey), r.Data)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("shard %s record %s: deaggregate: %w", sh.ID, aws.ToString(r.SequenceNumber), err))
				continue
			}
			for _, u := range users {
				h, err := HashKey(u.PartitionKey, u.ExplicitHashKey)
				if err != nil {
					*errs = append(*errs, fmt.Errorf("shard %s record %s/%d: %w", sh.ID, aws.ToString(r.SequenceNumber), u.SubSequenceNumber, err))
					continue
				}
				rec := Record{
					ShardID: sh.ID, SequenceNumber: aws.ToString(r.SequenceNumber), SubSequenceNumber: u.SubSequenceNumber,
					PartitionKey: u.PartitionKey, ExplicitHashKey: u.ExplicitHashKey,
					Data: append([]byte(nil), u.Data...), Aggregated: u.Aggregated,
				}
				if !sh.Contains(h) {
					out.OutOfRange = append(out.OutOfRange, rec)
					continue
				}
				out.Records = append(out.Records, rec)
				out.PerShard[sh.ID]++
			}
		}
		// An open shard's end is reached when a page is empty and the
		// reader is caught up; a closed shard's when the iterator ends.
		if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
			break
		}
		iter = page.NextShardIterator
	}
	return nil
}
