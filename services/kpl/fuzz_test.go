package kpl

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds are aggregates and protobuf bodies that reach every branch of
// the decoder, so that mutation starts from valid input.
func fuzzSeeds() [][]byte {
	var a Aggregator
	a.Add("pk", "", []byte("data"))
	a.Add("pk", "123", []byte{})
	a.Add("other", "123", bytes.Repeat([]byte{7}, 200))
	tables := pbJoin(pbBytes(1, []byte("p0")), pbBytes(2, []byte("e0")))
	return [][]byte{
		a.AppendEncoded(nil),
		nil,
		[]byte("plain"),
		pbJoin(tables, pbRecord(pbVarint(1, 0), pbVarint(2, 0), pbBytes(3, []byte("d")))),
		pbJoin(pbRecord(pbVarint(1, 0), pbBytes(3, []byte("d")), pbBytes(4, pbBytes(1, []byte("k")))), tables),
		pbJoin(tables, pbTag(9, wireStartGroup), pbVarint(1, 1), pbTag(9, wireEndGroup), pbTag(8, wireFixed32), []byte{1, 2, 3, 4},
			pbRecord(pbVarint(1, 0), pbBytes(3), pbTag(8, wireFixed64), make([]byte, 8))),
	}
}

// FuzzDeaggregate feeds arbitrary bytes to Deaggregate, both as they are and
// framed as an aggregate with a valid digest (so that mutations reach the
// protobuf parser instead of stopping at the checksum). It never panics,
// fails only with ErrChecksum or ErrMalformed, and whatever it accepts
// re-encodes with Aggregator and decodes to the same records.
func FuzzDeaggregate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Deaggregate(nil, "outer", data)
		switch {
		case err != nil && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrMalformed):
			t.Fatalf("error %v wraps neither ErrChecksum nor ErrMalformed", err)
		case err == nil && !IsAggregated(data) && (len(got) != 1 || got[0].Aggregated || got[0].PartitionKey != "outer" || !bytes.Equal(got[0].Data, data)):
			t.Fatalf("non-aggregated input did not pass through as one record: %+v", got)
		}

		framed := wrapAggregate(data)
		got, err = Deaggregate(nil, "outer", framed)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("framed input with a valid digest: error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var a Aggregator
		for _, r := range got {
			a.Add(r.PartitionKey, r.ExplicitHashKey, r.Data)
		}
		if len(got) == 0 {
			return // an aggregate without records; Aggregator encodes none
		}
		again, err := Deaggregate(nil, "outer", a.AppendEncoded(nil))
		if err != nil {
			t.Fatalf("re-encoded records do not decode: %v", err)
		}
		assertSameRecords(t, again, got)
	})
}

// FuzzAggregateRoundTrip builds records from arbitrary bytes, aggregates them
// and checks that SizeIfAdded is exact and that Deaggregate returns them.
func FuzzAggregateRoundTrip(f *testing.F) {
	f.Add([]byte{1, 'a', 0, 3, 'x', 'y', 'z', 1, 'a', 1, '9', 0})
	f.Add(bytes.Repeat([]byte{2, 'k', 'k', 1, '5', 100}, 30))
	f.Fuzz(func(t *testing.T, spec []byte) {
		// spec is a sequence of records: key length, key, explicit hash
		// key length, explicit hash key, data length, data (truncated at
		// the end of spec).
		next := func(n int) []byte {
			n = min(n, len(spec))
			b := spec[:n]
			spec = spec[n:]
			return b
		}
		var want []UserRecord
		var a Aggregator
		for len(spec) > 0 {
			pk := string(next(int(next(1)[0])))
			var ehk string
			if len(spec) > 0 {
				ehk = string(next(int(next(1)[0] % 40)))
			}
			var data []byte
			if len(spec) > 0 {
				data = next(int(next(1)[0]) * 3)
			}
			predicted := a.SizeIfAdded(pk, ehk, len(data))
			a.Add(pk, ehk, data)
			if a.Size() != predicted {
				t.Fatalf("SizeIfAdded said %d, Size after Add is %d", predicted, a.Size())
			}
			want = append(want, UserRecord{PartitionKey: pk, ExplicitHashKey: ehk, Data: data,
				SubSequenceNumber: int64(len(want)), Aggregated: true})
		}
		enc := a.AppendEncoded(nil)
		if len(enc) != a.Size() {
			t.Fatalf("encoded %d bytes, Size says %d", len(enc), a.Size())
		}
		if len(want) == 0 {
			if len(enc) != 0 {
				t.Fatalf("an aggregator without records encoded %d bytes", len(enc))
			}
			return
		}
		got, err := Deaggregate(nil, "outer", enc)
		if err != nil {
			t.Fatalf("Deaggregate: %v", err)
		}
		assertSameRecords(t, got, want)
	})
}

// assertSameRecords fails unless got and want hold the same records.
func assertSameRecords(t *testing.T, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || !bytes.Equal(g.Data, w.Data) ||
			g.SubSequenceNumber != w.SubSequenceNumber || g.Aggregated != w.Aggregated {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
	}
}
