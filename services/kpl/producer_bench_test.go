package kpl

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPutAsync drives PutAsync from parallel goroutines (keyless 100-byte records)
// into the in-memory fake; a refusal for a full buffer yields and retries. ns/op is per record.
// The per-shard rate limit is lifted (RateLimitPercent 100,000): at the default 150 % the
// fake's 4 shards would cap the run at 6 MiB/s, which measures the limiter, not the engine.
//
//	go test ./services/kpl/ -run '^$' -bench BenchmarkPutAsync -benchmem -cpu 1,2
func BenchmarkPutAsync(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		name := "keyless"
		if keyed {
			name = "keyed"
		}
		b.Run(name, func(b *testing.B) {
			f := newFakeKinesis(4)
			f.discard = true
			p, err := New(Config{StreamName: "bench", Logger: quietLogger, RateLimitPercent: 100_000}, f)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			var done, full atomic.Int64
			callback := func(Result) { done.Add(1) }
			data := payload(0, 100)
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = "user-" + hex.EncodeToString([]byte{byte(i), byte(i >> 8)})
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					r := Record{Data: data}
					if keyed {
						r.PartitionKey = keys[i%len(keys)]
					}
					i++
					for {
						err := p.PutAsync(r, callback)
						if !errors.Is(err, ErrBufferFull) {
							if err != nil {
								b.Error(err)
							}
							break
						}
						full.Add(1)
						runtime.Gosched()
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if done.Load() != int64(b.N) {
				b.Fatalf("%d callbacks for %d records", done.Load(), b.N)
			}
			b.ReportMetric(float64(full.Load())/float64(b.N), "bufferfull/op")
		})
	}
}

// BenchmarkPayloadEfficiency puts keyless 100-byte records through the producer and reports
// payload bytes / bytes sent to Kinesis (data + partition key + explicit hash key of every
// entry) as "payload/sent". In the same run it encodes the same records the way the KPL does
// for callers that give each record a random UUID key (one 36-character key per user record,
// the aggregate sent with the first record's key and hash key), reported as
// "kpl-uuid-payload/sent".
//
//	go test ./services/kpl/ -run '^$' -bench BenchmarkPayloadEfficiency -benchtime 3x
func BenchmarkPayloadEfficiency(b *testing.B) {
	const records, size = 20_000, 100
	var payloadBytes, sent, uuidSent int64
	for b.Loop() {
		f := newFakeKinesis(4)
		f.discard = true
		p, err := New(Config{StreamName: "bench", Logger: quietLogger}, f)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		for i := range records {
			if err := p.PutAsync(Record{Data: payload(i, size)}, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		payloadBytes += records * size
		sent += f.sentBytes
		uuidSent += kplUUIDBytesSent(records, size, DefaultMaxAggregateBytes)
	}
	b.ReportMetric(float64(payloadBytes)/float64(sent), "payload/sent")
	b.ReportMetric(float64(payloadBytes)/float64(uuidSent), "kpl-uuid-payload/sent")
}

// kplUUIDBytesSent encodes n records of size bytes, each with its own random UUID key, into
// aggregates of at most maxAggregate bytes, and returns the bytes sent to Kinesis: each
// aggregate's data, its partition key (the first record's) and explicit hash key (the first
// record's hash key in decimal), as the KPL sends them.
func kplUUIDBytesSent(n, size, maxAggregate int) int64 {
	var total int64
	var agg Aggregator
	var first string
	flush := func() {
		if agg.Count() == 0 {
			return
		}
		sum := md5.Sum([]byte(first))
		total += int64(agg.Size() + len(first) + len(new(big.Int).SetBytes(sum[:]).String()))
		agg.Reset()
	}
	data := make([]byte, size)
	for range n {
		key := uuid()
		if agg.SizeIfAdded(key, "", size) > maxAggregate {
			flush()
		}
		if agg.Count() == 0 {
			first = key
		}
		agg.Add(key, "", data)
	}
	flush()
	return total
}

// uuid returns a random version-4 UUID in its 36-character text form.
func uuid() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
