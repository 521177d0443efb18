package kpl

import (
	"context"
	"crypto/md5"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// shardRange is one open shard of the stream and the keys the producer uses for it.
type shardRange struct {
	id    string
	start HashKey
	end   HashKey
	// startKey is start in decimal: the explicit hash key of every aggregate sent to the
	// shard, so Kinesis routes the aggregate to this shard whatever keys its records carry.
	startKey string
	// keylessKey is the partition key shared by the records that came without one: the
	// shortest string whose own MD5 hash key falls inside this shard, so a consumer that
	// checks every user record's hash key against the shard's range keeps them.
	keylessKey string
	// keylessHashKey is empty when keylessKey hashes into the shard; otherwise (a shard too
	// narrow for any short key to land in) keyless records carry startKey as explicit hash key.
	keylessHashKey string
}

func (s *shardRange) contains(h HashKey) bool {
	return s.start.Compare(h) <= 0 && h.Compare(s.end) <= 0
}

// shardMap is the stream's open shards, sorted by starting hash key.
type shardMap struct {
	shards []shardRange
}

// find returns the index of the shard whose range holds h: the last shard starting at or
// before h. Open shards cover the whole key space, so it is always one; should a listing ever
// leave a gap, the nearest shard below is used and the put's returned shard id corrects it.
func (m *shardMap) find(h HashKey) int {
	i, _ := slices.BinarySearchFunc(m.shards, h, func(s shardRange, h HashKey) int {
		if s.start.Compare(h) <= 0 {
			return -1
		}
		return 1
	})
	return max(i-1, 0)
}

// indexOf returns the index of the shard with this id, or -1.
func (m *shardMap) indexOf(id string) int {
	return slices.IndexFunc(m.shards, func(s shardRange) bool { return s.id == id })
}

// listShardsAPI is the part of the Kinesis client the shard map needs.
type listShardsAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// loadShardMap lists the stream's open shards (every page) and builds the shard map.
func loadShardMap(ctx context.Context, client listShardsAPI, streamName string) (*shardMap, error) {
	var shards []shardRange
	in := &kinesis.ListShardsInput{
		StreamName:  &streamName,
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest},
	}
	for {
		out, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", streamName, err)
		}
		for _, s := range out.Shards {
			// AT_LATEST lists open shards only; a closed shard (one with an ending sequence
			// number) is skipped as well, for endpoints that ignore the filter.
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue
			}
			r, err := newShardRange(s)
			if err != nil {
				return nil, fmt.Errorf("list shards of %s: %w", streamName, err)
			}
			shards = append(shards, r)
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		// A request with a NextToken must not name the stream or a filter.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("list shards of %s: no open shard", streamName)
	}
	slices.SortFunc(shards, func(a, b shardRange) int { return a.start.Compare(b.start) })
	assignKeylessKeys(shards)
	return &shardMap{shards: shards}, nil
}

func newShardRange(s types.Shard) (shardRange, error) {
	if s.ShardId == nil || s.HashKeyRange == nil || s.HashKeyRange.StartingHashKey == nil || s.HashKeyRange.EndingHashKey == nil {
		return shardRange{}, fmt.Errorf("shard without id or hash key range: %+v", s)
	}
	start, ok1 := ParseHashKey(*s.HashKeyRange.StartingHashKey)
	end, ok2 := ParseHashKey(*s.HashKeyRange.EndingHashKey)
	if !ok1 || !ok2 || end.Compare(start) < 0 {
		return shardRange{}, fmt.Errorf("shard %s: bad hash key range %s..%s", *s.ShardId, *s.HashKeyRange.StartingHashKey, *s.HashKeyRange.EndingHashKey)
	}
	return shardRange{id: *s.ShardId, start: start, end: end, startKey: *s.HashKeyRange.StartingHashKey}, nil
}

// keylessKeyAlphabet orders the candidate keyless keys: "0".."9", "a".."z", then two
// characters "00", "01", ... so the first candidates found are the shortest.
const keylessKeyAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// keylessCandidate returns the i-th candidate key (bijective base 36).
func keylessCandidate(buf []byte, i int) []byte {
	buf = buf[:0]
	for i++; i > 0; {
		i--
		buf = append(buf, keylessKeyAlphabet[i%len(keylessKeyAlphabet)])
		i /= len(keylessKeyAlphabet)
	}
	slices.Reverse(buf)
	return buf
}

// assignKeylessKeys gives every shard the shortest candidate key hashing into it. One pass
// over the candidates serves all shards; for n evenly sized shards it takes about
// n*ln(n) MD5 sums (7,000 for 1,000 shards), well under a millisecond per hundred shards.
// Shards still without a key after the budget (only very narrow ones) fall back to an
// explicit hash key.
func assignKeylessKeys(shards []shardRange) {
	m := shardMap{shards: shards}
	missing := len(shards)
	n := float64(len(shards))
	budget := int(64*n*math.Log(n+1)) + 100_000
	var buf [16]byte
	for i := 0; missing > 0 && i < budget; i++ {
		key := keylessCandidate(buf[:], i)
		h := digestHashKey(md5.Sum(key))
		if s := &shards[m.find(h)]; s.keylessKey == "" && s.contains(h) {
			s.keylessKey = string(key)
			missing--
		}
	}
	for i := range shards {
		if shards[i].keylessKey == "" {
			shards[i].keylessKey = "k" + strconv.Itoa(i)
			shards[i].keylessHashKey = shards[i].startKey
		}
	}
}
