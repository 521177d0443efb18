package kpl

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// wrapAggregate builds a full aggregated record around protobuf bytes.
func wrapAggregate(protobuf []byte) []byte {
	sum := md5.Sum(protobuf)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, protobuf...)
	return append(out, sum[:]...)
}

func TestAggregatorEncodesExactBytes(t *testing.T) {
	var a Aggregator
	a.Add("a", "", []byte("x"))
	a.Add("b", "7", []byte("yz"))
	a.Add("a", "7", nil)

	// Computed by hand from the .proto: tables first, then records in order.
	want := wrapAggregate([]byte{
		0x0A, 0x01, 'a', 0x0A, 0x01, 'b', // partition_key_table: "a", "b"
		0x12, 0x01, '7', // explicit_hash_key_table: "7"
		0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, 'x', // {pk 0, data "x"}
		0x1A, 0x08, 0x08, 0x01, 0x10, 0x00, 0x1A, 0x02, 'y', 'z', // {pk 1, ehk 0, data "yz"}
		0x1A, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x00, // {pk 0, ehk 0, data ""}
	})
	got := a.AppendEncoded(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n got %x\nwant %x", got, want)
	}
	if a.Count() != 3 || a.Size() != len(want) {
		t.Fatalf("Count, Size = %d, %d; want 3, %d", a.Count(), a.Size(), len(want))
	}
}

func TestAggregatorEmpty(t *testing.T) {
	var a Aggregator
	if a.Size() != 0 || a.Count() != 0 {
		t.Fatalf("empty Size, Count = %d, %d; want 0, 0", a.Size(), a.Count())
	}
	if got := a.AppendEncoded([]byte("keep")); string(got) != "keep" {
		t.Fatalf("AppendEncoded on empty aggregator = %q, want the dst unchanged", got)
	}
	// The first record pays the whole overhead.
	want := EmptyAggregateSize + (1 + 1 + 2) + (1 + 1 + (1 + 1 + 1 + 1 + 3))
	if got := a.SizeIfAdded("pk", "", 3); got != want {
		t.Fatalf("SizeIfAdded on empty aggregator = %d, want %d", got, want)
	}
}

func TestAggregatorSizeIfAddedIsExact(t *testing.T) {
	// Lengths and counts chosen to cross every varint boundary the format can
	// meet: key and data lengths 127/128 and 16383/16384, and more than 128
	// distinct keys so that indexes take two bytes.
	tests := map[string]struct {
		records int
		keys    []string
		ehks    []string
		dataLen []int
	}{
		"one key no ehk": {records: 50, keys: []string{"k"}, dataLen: []int{0, 1, 100}},
		"distinct keys":  {records: 300, keys: manyKeys("pk", 300), ehks: []string{""}, dataLen: []int{100}},
		"varint boundaries": {
			records: 200,
			keys:    []string{strings.Repeat("a", 127), strings.Repeat("b", 128), strings.Repeat("c", 256)},
			ehks:    []string{"", "0", "340282366920938463463374607431768211455"},
			dataLen: []int{126, 127, 128, 129, 16382, 16383, 16384, 16385},
		},
		"many ehks": {records: 400, keys: []string{"x", "y"}, ehks: manyKeys("", 200), dataLen: []int{10, 200}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var a Aggregator
			for i := range tc.records {
				pk := tc.keys[rng.IntN(len(tc.keys))]
				ehk := ""
				if len(tc.ehks) > 0 {
					ehk = tc.ehks[rng.IntN(len(tc.ehks))]
				}
				data := make([]byte, tc.dataLen[rng.IntN(len(tc.dataLen))])
				predicted := a.SizeIfAdded(pk, ehk, len(data))
				a.Add(pk, ehk, data)
				if a.Size() != predicted {
					t.Fatalf("record %d: SizeIfAdded said %d, Size after Add is %d", i, predicted, a.Size())
				}
				if enc := a.AppendEncoded(nil); len(enc) != predicted {
					t.Fatalf("record %d: SizeIfAdded said %d, encoded %d bytes", i, predicted, len(enc))
				}
			}
			if a.Count() != tc.records {
				t.Fatalf("Count = %d, want %d", a.Count(), tc.records)
			}
		})
	}
}

func TestAggregatorDeduplicatesKeys(t *testing.T) {
	var a Aggregator
	for i := range 10 {
		a.Add("same-key", "42", []byte{byte(i)})
	}
	enc := a.AppendEncoded(nil)
	if n := bytes.Count(enc, []byte("same-key")); n != 1 {
		t.Fatalf("partition key stored %d times, want once", n)
	}
	if n := bytes.Count(enc, []byte{0x12, 0x02, '4', '2'}); n != 1 {
		t.Fatalf("explicit hash key stored %d times, want once", n)
	}
}

func TestAggregatorCopiesData(t *testing.T) {
	var a Aggregator
	data := []byte("original")
	a.Add("k", "", data)
	before := a.AppendEncoded(nil)
	copy(data, "CHANGED!")
	if after := a.AppendEncoded(nil); !bytes.Equal(before, after) {
		t.Fatal("changing the caller's data after Add changed the aggregate")
	}
}

func TestAggregatorResetAndAppend(t *testing.T) {
	var fresh, reused Aggregator
	reused.Add("old", "1", []byte("old data"))
	reused.Add("old2", "", []byte("more"))
	reused.Reset()
	if reused.Size() != 0 || reused.Count() != 0 {
		t.Fatalf("after Reset Size, Count = %d, %d; want 0, 0", reused.Size(), reused.Count())
	}
	for _, ag := range []*Aggregator{&fresh, &reused} {
		ag.Add("new", "", []byte("a"))
		ag.Add("old", "9", []byte("b"))
	}
	want := fresh.AppendEncoded(nil)
	got := reused.AppendEncoded([]byte("prefix"))
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("reused aggregator encoded %x after the prefix, fresh one %x", got, want)
	}
}

func TestAggregatorWarmAddDoesNotAllocate(t *testing.T) {
	keys := manyKeys("key-", 500)
	data := make([]byte, 100)
	var a Aggregator
	fill := func() {
		a.Reset()
		for _, k := range keys {
			a.Add(k, "", data)
		}
	}
	fill() // warm up: buffers and maps reach their working size
	if allocs := testing.AllocsPerRun(20, fill); allocs != 0 {
		t.Fatalf("filling a warm aggregator with %d records allocated %.1f times, want 0", len(keys), allocs)
	}
}

func TestVarintSize(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		if got, want := varintSize(v), len(appendVarint(nil, v)); got != want {
			t.Errorf("varintSize(%d) = %d, encoding is %d bytes", v, got, want)
		}
	}
}

// manyKeys returns n distinct keys with the given prefix.
func manyKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}
