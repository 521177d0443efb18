package kpl

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// evenShards returns n shards splitting the key space evenly, with ids from firstID.
func evenShards(n, firstID int) []types.Shard {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	width := new(big.Int).Div(space, big.NewInt(int64(n)))
	var out []types.Shard
	for i := range n {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Sub(space, big.NewInt(1))
		}
		out = append(out, types.Shard{
			ShardId:             aws.String(fmt.Sprintf("shardId-%012d", firstID+i)),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(start.String()), EndingHashKey: aws.String(end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
		})
	}
	return out
}

// pagedLister serves fixed shards in pages of pageSize and checks the request rules.
type pagedLister struct {
	shards   []types.Shard
	pageSize int
	calls    int
	err      error
}

func (l *pagedLister) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	l.calls++
	if l.err != nil {
		return nil, l.err
	}
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil || in.ShardFilter != nil {
			return nil, errors.New("InvalidArgumentException: NextToken with StreamName or ShardFilter")
		}
		fmt.Sscan(*in.NextToken, &start)
	} else if in.StreamName == nil || in.ShardFilter == nil || in.ShardFilter.Type != types.ShardFilterTypeAtLatest {
		return nil, errors.New("first request must name the stream and ask for open shards")
	}
	end := min(start+l.pageSize, len(l.shards))
	out := &kinesis.ListShardsOutput{Shards: l.shards[start:end]}
	if end < len(l.shards) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

func TestLoadShardMap(t *testing.T) {
	closed := evenShards(1, 100)[0]
	closed.SequenceNumberRange.EndingSequenceNumber = aws.String("99")
	tests := map[string]struct {
		shards   []types.Shard
		pageSize int
		wantIDs  int
		wantErr  bool
	}{
		"one shard":            {evenShards(1, 0), 10, 1, false},
		"paginated 25 shards":  {evenShards(25, 0), 4, 25, false},
		"closed shard skipped": {append(evenShards(2, 0), closed), 1, 2, false},
		"no open shard":        {[]types.Shard{closed}, 10, 0, true},
		"bad range": {[]types.Shard{{ShardId: aws.String("s"), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("10"), EndingHashKey: aws.String("5")}}}, 10, 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Reverse so the map has to sort.
			shards := append([]types.Shard(nil), tc.shards...)
			for i, j := 0, len(shards)-1; i < j; i, j = i+1, j-1 {
				shards[i], shards[j] = shards[j], shards[i]
			}
			m, err := loadShardMap(t.Context(), &pagedLister{shards: shards, pageSize: tc.pageSize}, "s")
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.shards) != tc.wantIDs {
				t.Fatalf("%d shards, want %d", len(m.shards), tc.wantIDs)
			}
			for i, s := range m.shards {
				if i > 0 && m.shards[i-1].start.Compare(s.start) >= 0 {
					t.Errorf("shards not sorted at %d", i)
				}
				// Every shard's keyless key hashes into it, and is short.
				if s.keylessHashKey != "" {
					t.Errorf("shard %s needed the explicit hash key fallback", s.id)
				}
				if !s.contains(PartitionKeyHash(s.keylessKey)) {
					t.Errorf("keyless key %q of shard %s hashes outside it", s.keylessKey, s.id)
				}
				if len(s.keylessKey) > 3 {
					t.Errorf("keyless key %q longer than 3 characters for %d shards", s.keylessKey, len(m.shards))
				}
				if m.find(s.start) != i || m.find(s.end) != i {
					t.Errorf("find of shard %d's bounds gives another shard", i)
				}
			}
		})
	}
}

func TestShardMapFindMatchesMD5(t *testing.T) {
	m, err := loadShardMap(t.Context(), &pagedLister{shards: evenShards(7, 0), pageSize: 100}, "s")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		pk := fmt.Sprint("key-", i)
		h := digestHashKey(md5.Sum([]byte(pk)))
		j := m.find(h)
		if !m.shards[j].contains(h) {
			t.Fatalf("%s mapped to shard %d which does not contain it", pk, j)
		}
	}
	if m.find(HashKey{}) != 0 || m.find(maxHashKey) != len(m.shards)-1 {
		t.Error("key space ends map to the wrong shards")
	}
}

func TestAssignKeylessKeysNarrowShard(t *testing.T) {
	// A shard one hash key wide: no short key lands in it, so it falls back to its start as
	// explicit hash key; the wide shards still get short keys.
	shards := []shardRange{
		{id: "a", start: HashKey{}, end: HashKey{1 << 63, 0}},
		{id: "narrow", start: HashKey{1 << 63, 1}, end: HashKey{1 << 63, 1}, startKey: HashKey{1 << 63, 1}.String()},
		{id: "b", start: HashKey{1 << 63, 2}, end: maxHashKey},
	}
	assignKeylessKeys(shards)
	if shards[1].keylessHashKey != shards[1].startKey {
		t.Errorf("narrow shard: keylessHashKey %q, want its start %q", shards[1].keylessHashKey, shards[1].startKey)
	}
	for _, i := range []int{0, 2} {
		if shards[i].keylessHashKey != "" || !shards[i].contains(PartitionKeyHash(shards[i].keylessKey)) {
			t.Errorf("shard %s: keyless key %q not inside", shards[i].id, shards[i].keylessKey)
		}
	}
}

func TestKeylessCandidates(t *testing.T) {
	var buf [16]byte
	want := map[int]string{0: "0", 9: "9", 10: "a", 35: "z", 36: "00", 37: "01", 36 + 36*36: "000"}
	for i, w := range want {
		if got := string(keylessCandidate(buf[:], i)); got != w {
			t.Errorf("candidate %d = %q, want %q", i, got, w)
		}
	}
}
