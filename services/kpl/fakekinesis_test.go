package kpl

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// fakeKinesis is an in-memory Kinesis stream: shards with hash key ranges and sequence
// numbers, Kinesis's PutRecords validation and routing, resharding, and injectable faults.
type fakeKinesis struct {
	mu       sync.Mutex
	shards   []*fakeShard
	nextID   int
	nextSeq  int64
	calls    []fakeCall // every PutRecords request, in order
	lists    int        // ListShards calls
	pageSize int        // ListShards page size; default 2

	// failEntry, when set, decides per entry whether it fails and with which code
	// ("" succeeds). call counts PutRecords requests from 0.
	failEntry func(call, entry int, e types.PutRecordsRequestEntry) string
	// failRequest, when set, fails a whole request with the error it returns.
	failRequest func(call int) error
	// discard drops stored records and request copies, for benchmarks; sentBytes still
	// counts data + partition key + explicit hash key of every acknowledged entry.
	discard   bool
	sentBytes int64
	// gate, when set, blocks each PutRecords until it can receive from it (or ctx ends).
	// Set it with setGate once the producer runs.
	gate chan struct{}
}

type fakeShard struct {
	id         string
	start, end *big.Int
	closed     bool
	records    []storedRecord
}

type storedRecord struct {
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
	SequenceNumber  string
}

type fakeCall struct {
	entries []types.PutRecordsRequestEntry
	failed  int
}

func newFakeKinesis(shards int) *fakeKinesis {
	f := &fakeKinesis{pageSize: 2}
	f.addUniformShards(shards)
	return f
}

func (f *fakeKinesis) addUniformShards(n int) {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	width := new(big.Int).Div(space, big.NewInt(int64(n)))
	for i := range n {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Sub(space, big.NewInt(1))
		}
		f.shards = append(f.shards, &fakeShard{id: fmt.Sprintf("shardId-%012d", f.nextID), start: start, end: end})
		f.nextID++
	}
}

// reshard closes every open shard and opens n uniform ones, as UpdateShardCount does.
func (f *fakeKinesis) reshard(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.shards {
		s.closed = true
	}
	f.addUniformShards(n)
}

func (f *fakeKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName both set")}
		}
		start, _ = strconv.Atoi(*in.NextToken)
	}
	openOnly := in.ShardFilter != nil && in.ShardFilter.Type == types.ShardFilterTypeAtLatest
	var all []types.Shard
	for _, s := range f.shards {
		if openOnly && s.closed {
			continue
		}
		sh := types.Shard{
			ShardId:             aws.String(s.id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("99999999")
		}
		all = append(all, sh)
	}
	end := min(start+max(f.pageSize, 1), len(all))
	out := &kinesis.ListShardsOutput{Shards: all[start:end]}
	if end < len(all) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.discard {
		return f.putDiscard(in)
	}
	call := len(f.calls)
	// Deep copy: the SDK serializes the request before returning, so the caller may reuse it.
	entries := make([]types.PutRecordsRequestEntry, len(in.Records))
	for i, e := range in.Records {
		entries[i] = types.PutRecordsRequestEntry{Data: append([]byte(nil), e.Data...), PartitionKey: aws.String(aws.ToString(e.PartitionKey))}
		if e.ExplicitHashKey != nil {
			entries[i].ExplicitHashKey = aws.String(*e.ExplicitHashKey)
		}
	}
	f.calls = append(f.calls, fakeCall{entries: entries})
	if err := validatePutRecords(in); err != nil {
		return nil, err
	}
	if f.failRequest != nil {
		if err := f.failRequest(call); err != nil {
			return nil, err
		}
	}
	out := &kinesis.PutRecordsOutput{}
	for i, e := range in.Records {
		if f.failEntry != nil {
			if code := f.failEntry(call, i, e); code != "" {
				out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected " + code)})
				out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
				f.calls[call].failed++
				continue
			}
		}
		h := entryHash(e)
		var shard *fakeShard
		for _, s := range f.shards {
			if !s.closed && s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 {
				shard = s
			}
		}
		f.nextSeq++
		seq := fmt.Sprintf("4960%032d", f.nextSeq)
		shard.records = append(shard.records, storedRecord{
			PartitionKey: *e.PartitionKey, ExplicitHashKey: aws.ToString(e.ExplicitHashKey),
			Data: append([]byte(nil), e.Data...), SequenceNumber: seq,
		})
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String(shard.id), SequenceNumber: aws.String(seq)})
	}
	return out, nil
}

// putDiscard acknowledges every entry in its shard without keeping anything.
func (f *fakeKinesis) putDiscard(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
	if err := validatePutRecords(in); err != nil {
		return nil, err
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i, e := range in.Records {
		h := entryHash(e)
		for _, s := range f.shards {
			if !s.closed && s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 {
				f.nextSeq++
				out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(s.id), SequenceNumber: aws.String(strconv.FormatInt(f.nextSeq, 10))}
			}
		}
		f.sentBytes += int64(len(e.Data) + len(*e.PartitionKey) + len(aws.ToString(e.ExplicitHashKey)))
	}
	return out, nil
}

// validatePutRecords applies Kinesis's request limits.
func validatePutRecords(in *kinesis.PutRecordsInput) error {
	invalid := func(format string, args ...any) error {
		return &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf(format, args...))}
	}
	if aws.ToString(in.StreamName) == "" {
		return invalid("no stream name")
	}
	if len(in.Records) == 0 || len(in.Records) > 500 {
		return invalid("%d records", len(in.Records))
	}
	total := 0
	for _, e := range in.Records {
		if e.PartitionKey == nil || *e.PartitionKey == "" || utf8.RuneCountInString(*e.PartitionKey) > 256 {
			return invalid("bad partition key")
		}
		if e.ExplicitHashKey != nil {
			if h, ok := new(big.Int).SetString(*e.ExplicitHashKey, 10); !ok || h.Sign() < 0 || h.BitLen() > 128 {
				return invalid("bad explicit hash key %q", *e.ExplicitHashKey)
			}
		}
		size := len(e.Data) + len(*e.PartitionKey)
		if size > MaxRecordSize {
			return invalid("record of %d bytes", size)
		}
		total += size
	}
	if total > 5<<20 {
		return invalid("request of %d bytes", total)
	}
	return nil
}

func entryHash(e types.PutRecordsRequestEntry) *big.Int {
	if e.ExplicitHashKey != nil {
		h, _ := new(big.Int).SetString(*e.ExplicitHashKey, 10)
		return h
	}
	return md5Int(*e.PartitionKey)
}

func md5Int(s string) *big.Int {
	sum := md5.Sum([]byte(s))
	return new(big.Int).SetBytes(sum[:])
}

// userRecordOut is one user record read back from the fake stream.
type userRecordOut struct {
	UserRecord
	shard          string
	sequenceNumber string
	inRange        bool // the hash key a KCL checks lies in the shard's range
}

// readBack deaggregates everything stored, in shard then sequence order. It fails on a
// corrupt aggregate.
func (f *fakeKinesis) readBack() ([]userRecordOut, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []userRecordOut
	for _, s := range f.shards {
		for _, r := range s.records {
			urs, err := Deaggregate(nil, r.PartitionKey, r.Data)
			if err != nil {
				return nil, fmt.Errorf("shard %s record %s: %w", s.id, r.SequenceNumber, err)
			}
			for _, u := range urs {
				h := md5Int(u.PartitionKey)
				if u.ExplicitHashKey != "" {
					h, _ = new(big.Int).SetString(u.ExplicitHashKey, 10)
				} else if !u.Aggregated && r.ExplicitHashKey != "" {
					h, _ = new(big.Int).SetString(r.ExplicitHashKey, 10)
				}
				out = append(out, userRecordOut{
					UserRecord: u, shard: s.id, sequenceNumber: r.SequenceNumber,
					inRange: s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0,
				})
			}
		}
	}
	return out, nil
}

func (f *fakeKinesis) setGate(g chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = g
}

func (f *fakeKinesis) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeKinesis) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeKinesis) callsCopy() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// errInjectedReset stands for a connection reset: a request error without an API code.
var errInjectedReset = errors.New("read tcp 127.0.0.1:1234: connection reset by peer")
