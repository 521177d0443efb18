package kcl

import (
	"math"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// fuzzAttrNames are the attribute names a fuzzed item draws from: every lease attribute, plus one outside the schema.
var fuzzAttrNames = []string{
	AttrLeaseKey, AttrLeaseOwner, AttrLeaseCounter, AttrCheckpoint, AttrCheckpointSubSequenceNumber,
	AttrOwnerSwitchesSinceCheckpoint, AttrParentShardID, AttrChildShardIDs, AttrStartingHashKey, AttrEndingHashKey,
	AttrPendingCheckpoint, AttrThroughputKBps, AttrCheckpointOwner, AttrEntityType, "leaseTypeOrSomethingElse",
}

// itemFromFuzz decodes fuzz bytes into a DynamoDB attribute map: a sequence of (name index, type, length, value)
// groups, with every attribute value type DynamoDB has.
func itemFromFuzz(data []byte) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{}
	for len(data) >= 3 {
		name := fuzzAttrNames[int(data[0])%len(fuzzAttrNames)]
		kind := data[1] % 13
		n := min(int(data[2]), len(data)-3)
		v := string(data[3 : 3+n])
		data = data[3+n:]
		var av types.AttributeValue
		switch kind {
		case 0:
			av = &types.AttributeValueMemberS{Value: v}
		case 1:
			av = &types.AttributeValueMemberN{Value: v}
		case 2:
			av = &types.AttributeValueMemberSS{Value: splitFuzz(v)}
		case 3:
			var l []types.AttributeValue
			for i, e := range splitFuzz(v) {
				if i%3 == 2 {
					l = append(l, &types.AttributeValueMemberN{Value: e})
				} else {
					l = append(l, &types.AttributeValueMemberS{Value: e})
				}
			}
			av = &types.AttributeValueMemberL{Value: l}
		case 4:
			av = &types.AttributeValueMemberB{Value: []byte(v)}
		case 5:
			av = &types.AttributeValueMemberBOOL{Value: n%2 == 0}
		case 6:
			av = &types.AttributeValueMemberNULL{Value: true}
		case 7:
			av = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{v: &types.AttributeValueMemberS{Value: v}}}
		case 8:
			av = &types.AttributeValueMemberNS{Value: splitFuzz(v)}
		case 9:
			av = nil // a nil interface value in the map
		case 10: // typed nil pointers, which no SDK decoder returns but a caller's code may build
			av = (*types.AttributeValueMemberS)(nil)
		case 11:
			av = (*types.AttributeValueMemberN)(nil)
		case 12:
			av = &types.AttributeValueMemberL{Value: []types.AttributeValue{nil, (*types.AttributeValueMemberS)(nil)}[n%2:]}
		}
		item[name] = av
	}
	return item
}

func splitFuzz(v string) []string {
	var out []string
	for len(v) > 0 {
		i := min(len(v), 1+int(v[0])%8)
		out = append(out, v[:i])
		v = v[i:]
	}
	return out
}

// FuzzLeaseFromItem: any attribute map yields a lease or an error, never a panic; a lease has a key and survives a
// write and a read unchanged.
func FuzzLeaseFromItem(f *testing.F) {
	f.Add([]byte{0, 0, 20, 's', 'h', 'a', 'r', 'd', 'I', 'd', '-', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '1',
		2, 1, 2, '1', '7', 3, 0, 9, 'S', 'H', 'A', 'R', 'D', '_', 'E', 'N', 'D', 6, 2, 4, 'a', 'b', 'c', 'd'})
	f.Add([]byte{0, 0, 1, 'k', 6, 3, 3, 's', 'x', 'y', 2, 1, 3, '1', 'e', '9'})
	f.Add([]byte{0, 0, 1, 'k', 8, 0, 1, '0', 1, 9, 0})
	f.Add([]byte{0, 4, 2, 'k', 'k'})
	f.Add([]byte{0, 0, 1, 'k', 1, 11, 0, 6, 10, 0, 7, 12, 1, 'x'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := leaseFromItem(itemFromFuzz(data))
		if err != nil {
			return
		}
		if l.Key == "" {
			t.Fatalf("lease without a key and no error: %+v", l)
		}
		again, err := leaseFromItem(leaseToItem(l))
		if err != nil {
			t.Fatalf("lease %+v does not read back: %v", l, err)
		}
		want := l
		if want.StartingHashKey == "" || want.EndingHashKey == "" { // a half range is not written
			want.StartingHashKey, want.EndingHashKey = "", ""
		}
		if again.Key != want.Key || again.Owner != want.Owner || again.Counter != want.Counter ||
			again.Checkpoint != want.Checkpoint || again.CheckpointSubSequenceNumber != want.CheckpointSubSequenceNumber ||
			again.OwnerSwitchesSinceCheckpoint != want.OwnerSwitchesSinceCheckpoint ||
			!slices.Equal(again.ParentShardIDs, want.ParentShardIDs) || !slices.Equal(again.ChildShardIDs, want.ChildShardIDs) ||
			again.StartingHashKey != want.StartingHashKey || again.EndingHashKey != want.EndingHashKey ||
			again.CheckpointOwner != want.CheckpointOwner || again.HasThroughput != want.HasThroughput ||
			math.Abs(again.ThroughputKBps-want.ThroughputKBps) > 1e-6*max(1, math.Abs(want.ThroughputKBps)) {
			t.Fatalf("read back %+v, want %+v", again, want)
		}
	})
}
