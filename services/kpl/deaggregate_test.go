package kpl

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Protobuf builders for hand-made test aggregates.

func pbTag(num uint64, wire byte) []byte { return appendVarint(nil, num<<3|uint64(wire)) }

func pbVarint(num, v uint64) []byte { return appendVarint(pbTag(num, wireVarint), v) }

func pbBytes(num uint64, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append(appendVarint(pbTag(num, wireBytes), uint64(len(p))), p...)
}

func pbJoin(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// pbRecord encodes a Record message as an AggregatedRecord.records field.
func pbRecord(fields ...[]byte) []byte { return pbBytes(3, fields...) }

func TestDeaggregateRoundTrip(t *testing.T) {
	type rec struct{ pk, ehk, data string }
	tests := map[string][]rec{
		"one record":      {{"pk", "", "hello"}},
		"shared key":      {{"k", "", "a"}, {"k", "", "b"}, {"k", "", "c"}},
		"explicit hashes": {{"a", "1", "x"}, {"b", "", "y"}, {"a", "340282366920938463463374607431768211455", "z"}},
		"empty data":      {{"k", "", ""}, {"k", "", "after empty"}},
		"large data":      {{"k", "", strings.Repeat("d", 70000)}, {"j", "5", "small"}},
		"unicode keys":    {{"clé-ü-日本", "", "data"}, {"ключ", "12", "more"}},
		"many keys":       manyRecs(300, func(i int) rec { return rec{fmt.Sprintf("key-%d", i), fmt.Sprint(i % 7), fmt.Sprint(i)} }),
	}
	for name, recs := range tests {
		t.Run(name, func(t *testing.T) {
			var a Aggregator
			for _, r := range recs {
				a.Add(r.pk, r.ehk, []byte(r.data))
			}
			enc := a.AppendEncoded(nil)
			if !IsAggregated(enc) {
				t.Fatal("IsAggregated(encoded aggregate) = false")
			}
			got, err := Deaggregate([]UserRecord{{PartitionKey: "earlier"}}, "outer-key", enc)
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			if len(got) != len(recs)+1 || got[0].PartitionKey != "earlier" {
				t.Fatalf("got %d records (first %q), want the earlier one plus %d", len(got), got[0].PartitionKey, len(recs))
			}
			for i, r := range recs {
				u := got[i+1]
				if u.PartitionKey != r.pk || u.ExplicitHashKey != r.ehk || string(u.Data) != r.data ||
					u.SubSequenceNumber != int64(i) || !u.Aggregated {
					t.Fatalf("record %d = {%q %q %q %d %v}, want {%q %q %q %d true}", i,
						u.PartitionKey, u.ExplicitHashKey, u.Data, u.SubSequenceNumber, u.Aggregated, r.pk, r.ehk, r.data, i)
				}
			}
		})
	}
}

func manyRecs[T any](n int, f func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestDeaggregateValidInput(t *testing.T) {
	type want struct{ pk, ehk, data string }
	tables := pbJoin(pbBytes(1, []byte("p0")), pbBytes(1, []byte("p1")), pbBytes(2, []byte("e0")))
	tests := map[string]struct {
		data       []byte
		aggregated bool
		want       []want
	}{
		"not aggregated": {
			data: []byte("plain payload"), want: []want{{"outer", "", "plain payload"}},
		},
		"empty": {
			data: []byte{}, want: []want{{"outer", "", ""}},
		},
		"magic but too short for a digest": {
			data: append(magic[:], make([]byte, DigestSize-1)...), want: []want{{"outer", "", string(append(magic[:], make([]byte, DigestSize-1)...))}},
		},
		"aggregate without records": {
			data: wrapAggregate(tables), aggregated: true, want: nil,
		},
		"aggregate of nothing at all": {
			data: wrapAggregate(nil), aggregated: true, want: nil,
		},
		"tables after records": {
			data: wrapAggregate(pbJoin(
				pbRecord(pbVarint(1, 1), pbBytes(3, []byte("a"))),
				pbRecord(pbVarint(1, 0), pbVarint(2, 0), pbBytes(3, []byte("b"))),
				tables)),
			aggregated: true, want: []want{{"p1", "", "a"}, {"p0", "e0", "b"}},
		},
		"fields inside a record in any order": {
			data:       wrapAggregate(pbJoin(tables, pbRecord(pbBytes(3, []byte("d")), pbVarint(2, 0), pbVarint(1, 1)))),
			aggregated: true, want: []want{{"p1", "e0", "d"}},
		},
		"repeated scalar fields: last one wins": {
			data: wrapAggregate(pbJoin(tables, pbRecord(pbVarint(1, 0), pbBytes(3, []byte("old")),
				pbVarint(1, 1), pbBytes(3, []byte("new"))))),
			aggregated: true, want: []want{{"p1", "", "new"}},
		},
		"tags are skipped": {
			data: wrapAggregate(pbJoin(tables, pbRecord(pbVarint(1, 0), pbBytes(4, pbBytes(1, []byte("tk")), pbBytes(2, []byte("tv"))),
				pbBytes(3, []byte("d")), pbBytes(4, pbBytes(1, []byte("only-key")))))),
			aggregated: true, want: []want{{"p0", "", "d"}},
		},
		"unknown fields of every wire type are skipped": {
			data: wrapAggregate(pbJoin(
				pbVarint(9, 300), tables, pbBytes(10, []byte("unknown")),
				pbTag(11, wireFixed32), []byte{1, 2, 3, 4},
				pbTag(12, wireFixed64), []byte{1, 2, 3, 4, 5, 6, 7, 8},
				pbTag(13, wireStartGroup), pbVarint(1, 5), pbTag(14, wireStartGroup), pbBytes(2, []byte("x")), pbTag(14, wireEndGroup), pbTag(13, wireEndGroup),
				pbRecord(pbVarint(1, 0), pbVarint(100, 1), pbBytes(3, []byte("d")), pbTag(101, wireFixed64), []byte{0, 0, 0, 0, 0, 0, 0, 0},
					pbTag(102, wireStartGroup), pbTag(102, wireEndGroup)),
				pbVarint(1<<29-1, 7))),
			aggregated: true, want: []want{{"p0", "", "d"}},
		},
		"empty data field": {
			data:       wrapAggregate(pbJoin(tables, pbRecord(pbVarint(1, 0), pbBytes(3)))),
			aggregated: true, want: []want{{"p0", "", ""}},
		},
		"empty keys": {
			data:       wrapAggregate(pbJoin(pbBytes(1), pbBytes(2), pbRecord(pbVarint(1, 0), pbVarint(2, 0), pbBytes(3, []byte("d"))))),
			aggregated: true, want: []want{{"", "", "d"}},
		},
		"multi-byte varints": {
			data:       wrapAggregate(pbJoin(tables, pbRecord([]byte{0x88, 0x00}, []byte{0x81, 0x80, 0x00}, pbBytes(3, []byte("d"))))),
			aggregated: true, want: []want{{"p1", "", "d"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := IsAggregated(tc.data); got != tc.aggregated {
				t.Fatalf("IsAggregated = %v, want %v", got, tc.aggregated)
			}
			got, err := Deaggregate(nil, "outer", tc.data)
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				u := got[i]
				if u.PartitionKey != w.pk || u.ExplicitHashKey != w.ehk || string(u.Data) != w.data || u.Aggregated != tc.aggregated {
					t.Fatalf("record %d = {%q %q %q aggregated=%v}, want {%q %q %q aggregated=%v}",
						i, u.PartitionKey, u.ExplicitHashKey, u.Data, u.Aggregated, w.pk, w.ehk, w.data, tc.aggregated)
				}
			}
		})
	}
}

func TestDeaggregateErrors(t *testing.T) {
	var a Aggregator
	a.Add("pk", "1", []byte("payload"))
	good := a.AppendEncoded(nil)
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[(i+len(b))%len(b)] ^= 0x40
		return b
	}
	table := pbBytes(1, []byte("p"))
	data := pbBytes(3, []byte("d"))
	nested := pbTag(5, wireStartGroup)
	for range maxGroupDepth {
		nested = append(nested, pbTag(5, wireStartGroup)...)
	}
	tests := map[string]struct {
		data []byte
		want error
	}{
		"digest altered":                  {flip(-1), ErrChecksum},
		"protobuf altered":                {flip(MagicSize + 1), ErrChecksum},
		"digest of nothing, wrong":        {append(magic[:], make([]byte, DigestSize)...), ErrChecksum},
		"record runs past the end":        {wrapAggregate(pbJoin(table, []byte{0x1A, 0x10, 0x08, 0x00})), ErrMalformed},
		"key runs past the end":           {wrapAggregate([]byte{0x0A, 0x05, 'p'}), ErrMalformed},
		"truncated varint":                {wrapAggregate(pbJoin(table, pbRecord(data, []byte{0x08, 0x80}))), ErrMalformed},
		"truncated tag":                   {wrapAggregate([]byte{0x80}), ErrMalformed},
		"varint over 64 bits":             {wrapAggregate(pbJoin(table, pbRecord(data, []byte{0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}))), ErrMalformed},
		"varint of 11 bytes":              {wrapAggregate(pbJoin(table, pbRecord(data, []byte{0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}))), ErrMalformed},
		"missing partition key index":     {wrapAggregate(pbJoin(table, pbRecord(data))), ErrMalformed},
		"missing data":                    {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0)))), ErrMalformed},
		"partition key index too large":   {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 1), data))), ErrMalformed},
		"huge partition key index":        {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 1<<63), data))), ErrMalformed},
		"no partition key table":          {wrapAggregate(pbRecord(pbVarint(1, 0), data)), ErrMalformed},
		"explicit hash key index too big": {wrapAggregate(pbJoin(table, pbBytes(2, []byte("7")), pbRecord(pbVarint(1, 0), pbVarint(2, 1), data))), ErrMalformed},
		"no explicit hash key table":      {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0), pbVarint(2, 0), data))), ErrMalformed},
		"key table as varint":             {wrapAggregate(pbJoin(pbVarint(1, 3), pbRecord(pbVarint(1, 0), data))), ErrMalformed},
		"records as varint":               {wrapAggregate(pbJoin(table, pbVarint(3, 1))), ErrMalformed},
		"key index as bytes":              {wrapAggregate(pbJoin(table, pbRecord(pbBytes(1, []byte{0}), data))), ErrMalformed},
		"data as varint":                  {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0), pbVarint(3, 1)))), ErrMalformed},
		"tags as varint":                  {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0), data, pbVarint(4, 1)))), ErrMalformed},
		"wire type 6":                     {wrapAggregate(pbJoin(table, pbTag(7, 6))), ErrMalformed},
		"wire type 7 in a record":         {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0), data, pbTag(7, 7)))), ErrMalformed},
		"field number 0":                  {wrapAggregate(pbJoin(table, []byte{0x00, 0x00})), ErrMalformed},
		"field number over 2^29-1":        {wrapAggregate(pbJoin(table, pbVarint(1<<29, 0))), ErrMalformed},
		"end group without start":         {wrapAggregate(pbJoin(table, pbTag(5, wireEndGroup))), ErrMalformed},
		"group ended by another field":    {wrapAggregate(pbJoin(table, pbTag(5, wireStartGroup), pbTag(6, wireEndGroup))), ErrMalformed},
		"group never ended":               {wrapAggregate(pbJoin(table, pbTag(5, wireStartGroup), pbVarint(1, 1))), ErrMalformed},
		"groups nested too deep":          {wrapAggregate(pbJoin(table, nested)), ErrMalformed},
		"truncated fixed32":               {wrapAggregate(pbJoin(table, pbTag(9, wireFixed32), []byte{1, 2, 3})), ErrMalformed},
		"truncated fixed64":               {wrapAggregate(pbJoin(table, pbTag(9, wireFixed64), []byte{1, 2, 3, 4, 5, 6, 7})), ErrMalformed},
		"bad record after good ones":      {wrapAggregate(pbJoin(table, pbRecord(pbVarint(1, 0), data), pbRecord(pbVarint(1, 0), data), pbRecord(data))), ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if !IsAggregated(tc.data) {
				t.Fatal("test input is not framed as an aggregate")
			}
			prior := []UserRecord{{PartitionKey: "prior"}}
			got, err := Deaggregate(prior, "outer", tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Deaggregate error = %v, want one wrapping %v", err, tc.want)
			}
			other := ErrMalformed
			if tc.want == ErrMalformed {
				other = ErrChecksum
			}
			if errors.Is(err, other) {
				t.Fatalf("Deaggregate error %v also wraps %v", err, other)
			}
			if len(got) != 1 || got[0].PartitionKey != "prior" {
				t.Fatalf("on error Deaggregate returned %d records, want dst unchanged (1 record)", len(got))
			}
		})
	}
}

func TestDeaggregateDataAliasesInputWithLimitedCapacity(t *testing.T) {
	var a Aggregator
	a.Add("k", "", []byte("first"))
	a.Add("k", "", []byte("second"))
	enc := a.AppendEncoded(nil)
	got, err := Deaggregate(nil, "", enc)
	if err != nil {
		t.Fatal(err)
	}
	if cap(got[0].Data) != len(got[0].Data) {
		t.Fatalf("record data has capacity %d beyond its length %d: an append would overwrite the input", cap(got[0].Data), len(got[0].Data))
	}
	i := bytes.Index(enc, []byte("first"))
	enc[i] = 'F'
	if string(got[0].Data) != "First" {
		t.Fatalf("record data = %q, want it to alias the input (documented)", got[0].Data)
	}
}

func TestDeaggregateAllocatesOncePerAggregate(t *testing.T) {
	tests := map[string]func(i int) string{
		"one key":               func(int) string { return "shared-partition-key" },
		"a key for each record": func(i int) string { return fmt.Sprintf("partition-key-%d", i) },
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			var a Aggregator
			data := make([]byte, 100)
			for i := 0; a.SizeIfAdded(key(i), "", len(data)) <= 51200; i++ {
				a.Add(key(i), "", data)
			}
			enc := a.AppendEncoded(nil)
			dst, err := Deaggregate(nil, "", enc)
			if err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if dst, err = Deaggregate(dst[:0], "", enc); err != nil || len(dst) != a.Count() {
					t.Fatalf("Deaggregate: %d records, %v", len(dst), err)
				}
			})
			if allocs > 1 {
				t.Fatalf("decoding an aggregate of %d records into a reused dst allocated %.1f times, want at most 1", a.Count(), allocs)
			}
		})
	}
}

func TestIsAggregated(t *testing.T) {
	tests := map[string]struct {
		data []byte
		want bool
	}{
		"nil":                       {nil, false},
		"magic only":                {magic[:], false},
		"magic and 15 bytes":        {append(magic[:], make([]byte, 15)...), false},
		"magic and 16 bytes":        {append(magic[:], make([]byte, 16)...), true},
		"other prefix":              {append([]byte{0xF3, 0x89, 0x9A, 0xC3}, make([]byte, 40)...), false},
		"aggregate with bad digest": {append(magic[:], make([]byte, 40)...), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := IsAggregated(tc.data); got != tc.want {
				t.Fatalf("IsAggregated = %v, want %v", got, tc.want)
			}
		})
	}
}
