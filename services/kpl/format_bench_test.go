package kpl

import (
	"crypto/md5"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
)

// Benchmarks of the aggregation format on the KPL's defaults: 100-byte user
// records packed into aggregates of at most 51,200 bytes. Throughput (MB/s)
// counts user payload bytes, aggregate_MB/s the aggregate's bytes (payload,
// keys and framing: what MD5 hashes); awslabs' Go deaggregator and
// crypto/md5 alone on a 51,200-byte aggregate run in the same file as
// baselines:
//
//	go test ./services/kpl/ -run '^$' -bench 'Aggregate|Deaggregate|MD5' -benchtime=2s -count=3

const (
	benchRecordSize    = 100
	benchAggregateSize = 51_200
)

// benchKeys are the partition-key schemes benchmarked: one key shared by the
// whole aggregate (records without a client key) and a distinct client key
// per record (the worst case for the key table).
var benchKeys = map[string]func(i int) string{
	"one_key":        func(int) string { return "shared-partition-key" },
	"key_per_record": func(i int) string { return fmt.Sprintf("client-key-%08d", i) },
}

// benchRecords returns the keys and payload of one full aggregate.
func benchRecords(key func(int) string) (keys []string, data []byte) {
	data = make([]byte, benchRecordSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var a Aggregator
	for i := 0; a.SizeIfAdded(key(i), "", len(data)) <= benchAggregateSize; i++ {
		keys = append(keys, key(i))
		a.Add(key(i), "", data)
	}
	return keys, data
}

// benchAggregate returns the keys and payload of one full aggregate, and the aggregate
// encoded.
func benchAggregate(key func(int) string) (keys []string, data, encoded []byte) {
	keys, data = benchRecords(key)
	var a Aggregator
	for _, k := range keys {
		a.Add(k, "", data)
	}
	return keys, data, a.AppendEncoded(nil)
}

// reportAggregate reports the records per aggregate and the throughput in
// aggregate bytes.
func reportAggregate(b *testing.B, records, aggregateSize int) {
	b.ReportMetric(float64(records), "records/op")
	b.ReportMetric(float64(aggregateSize)*float64(b.N)/b.Elapsed().Seconds()/1e6, "aggregate_MB/s")
}

func BenchmarkAggregate(b *testing.B) {
	for name, key := range benchKeys {
		b.Run(name, func(b *testing.B) {
			keys, data := benchRecords(key)
			var a Aggregator
			out := make([]byte, 0, benchAggregateSize)
			b.SetBytes(int64(len(keys) * len(data)))
			b.ReportAllocs()
			for b.Loop() {
				a.Reset()
				for _, k := range keys {
					if a.SizeIfAdded(k, "", len(data)) > benchAggregateSize {
						b.Fatal("aggregate overflow")
					}
					a.Add(k, "", data)
				}
				out = a.AppendEncoded(out[:0])
			}
			reportAggregate(b, len(keys), len(out))
		})
	}
}

func BenchmarkDeaggregate(b *testing.B) {
	for name, key := range benchKeys {
		b.Run(name, func(b *testing.B) {
			keys, data, enc := benchAggregate(key)
			dst := make([]UserRecord, 0, len(keys))
			b.SetBytes(int64(len(keys) * len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = Deaggregate(dst[:0], "outer", enc); err != nil || len(dst) != len(keys) {
					b.Fatalf("Deaggregate: %d records, %v", len(dst), err)
				}
			}
			reportAggregate(b, len(keys), len(enc))
		})
	}
}

// BenchmarkDecodeAggregate is BenchmarkDeaggregate without the MD5 digest check (see
// BenchmarkMD5): the protobuf decoding alone, where a change of the decoder shows.
func BenchmarkDecodeAggregate(b *testing.B) {
	for name, key := range benchKeys {
		b.Run(name, func(b *testing.B) {
			keys, data, enc := benchAggregate(key)
			body := enc[MagicSize : len(enc)-DigestSize]
			dst := make([]UserRecord, 0, len(keys))
			b.SetBytes(int64(len(keys) * len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = decodeAggregate(dst[:0], body); err != nil || len(dst) != len(keys) {
					b.Fatalf("decodeAggregate: %d records, %v", len(dst), err)
				}
			}
			reportAggregate(b, len(keys), len(enc))
		})
	}
}

// BenchmarkDeaggregateAwslabsGo is the baseline: awslabs' Go deaggregator
// (golang/protobuf) on the same aggregates.
func BenchmarkDeaggregateAwslabsGo(b *testing.B) {
	for name, key := range benchKeys {
		b.Run(name, func(b *testing.B) {
			keys, data, enc := benchAggregate(key)
			in := []types.Record{{PartitionKey: aws.String("outer"), SequenceNumber: aws.String("1"), Data: enc}}
			b.SetBytes(int64(len(keys) * len(data)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := deaggregator.DeaggregateRecords(in)
				if err != nil || len(out) != len(keys) {
					b.Fatalf("DeaggregateRecords: %d records, %v", len(out), err)
				}
			}
			reportAggregate(b, len(keys), len(in[0].Data))
		})
	}
}

// BenchmarkMD5 is the baseline both directions pay: the digest of one
// 51,200-byte aggregate.
func BenchmarkMD5(b *testing.B) {
	buf := make([]byte, benchAggregateSize)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		md5.Sum(buf)
	}
}
