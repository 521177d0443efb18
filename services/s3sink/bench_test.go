package s3sink

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
)

// BenchmarkEncode measures the sink's encoding, from records to finished spill files of 64 MiB of input (the
// default object), without S3: records per second per core (run with -cpu 1) and the peak heap. The floor is the
// same records written as plain JSON lines to a file (no compression), measured in the same run:
//
//	go test -run '^$' -bench Encode -benchtime 400000x -cpu 1 ./services/s3sink/
func BenchmarkEncode(b *testing.B) {
	for _, size := range []int{100, 1024} {
		records := benchRecords(20000, size) // distinct records, more than a Parquet page or a gzip window holds
		for _, format := range []string{"jsonlines-file-floor", string(FormatNDJSON), string(FormatParquet)} {
			b.Run(fmt.Sprintf("%s/%dB", format, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				peak := &heapPeak{}
				if format == "jsonlines-file-floor" {
					benchJSONLines(b, records, peak)
				} else {
					benchObjects(b, Format(format), records, peak)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(peak.max)/(1<<20), "peak-live-heap-MiB")
			})
		}
	}
}

// benchObjects encodes b.N records into objects of DefaultMaxObjectBytes as the processor does, dropping each
// finished spill file.
func benchObjects(b *testing.B, f Format, records []kcl.Record, peak *heapPeak) {
	cfg := Config{Format: f, MaxObjectBytes: DefaultMaxObjectBytes}
	dir := b.TempDir()
	var bt *batch
	var bytes int64
	peak.sample()
	b.ResetTimer()
	for done := 0; done < b.N; {
		from := done % len(records)
		chunk := records[from:min(from+500, len(records), from+b.N-done)] // one GetRecords call's worth
		for len(chunk) > 0 {
			if bt == nil {
				var err error
				if bt, err = openBatch(&cfg, dir, &chunk[0], time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			n, full, err := bt.add(chunk, cfg.MaxObjectBytes)
			if err != nil {
				b.Fatal(err)
			}
			chunk, done = chunk[n:], done+n
			if full || done == b.N {
				bytes += finishBench(b, bt)
				bt = nil
			}
		}
		peak.sample()
	}
	b.StopTimer()
	b.ReportMetric(float64(bytes)/float64(b.N), "object-bytes/record")
}

func finishBench(b *testing.B, bt *batch) int64 {
	if err := bt.seal(FlushSize); err != nil {
		b.Fatal(err)
	}
	size, err := bt.size()
	if err != nil {
		b.Fatal(err)
	}
	if err := bt.discard(); err != nil {
		b.Fatal(err)
	}
	return size
}

// benchJSONLines writes b.N records as JSON lines (the NDJSON encoding without gzip) to a buffered file.
func benchJSONLines(b *testing.B, records []kcl.Record, peak *heapPeak) {
	f, err := os.Create(filepath.Join(b.TempDir(), "lines.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 64<<10)
	var line []byte
	peak.sample()
	b.ResetTimer()
	for done := 0; done < b.N; {
		from := done % len(records)
		chunk := records[from:min(from+500, len(records), from+b.N-done)]
		for i := range chunk {
			line = appendJSONLine(line[:0], &chunk[i])
			if _, err := w.Write(line); err != nil {
				b.Fatal(err)
			}
		}
		done += len(chunk)
		peak.sample()
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

// benchRecords are n records of size-byte JSON payloads with varied values, over 100 partition keys.
func benchRecords(n, size int) []kcl.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	at := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	out := make([]kcl.Record, n)
	for i := range out {
		data := fmt.Appendf(nil, `{"id":%d,"user":"user-%d","event":"click","value":%.3f,"note":"`, i, rng.IntN(10000), rng.Float64())
		for len(data) < size-2 {
			data = append(data, letters[rng.IntN(len(letters))])
		}
		data = append(data, `"}`...)
		out[i] = kcl.Record{ShardID: "shardId-000000000001", SequenceNumber: "4966123456789012345678901234567890123456789012345" + fmt.Sprintf("%07d", i/50),
			SubSequenceNumber: int64(i % 50), PartitionKey: "key-" + strconv.Itoa(rng.IntN(100)), Data: data[:size],
			ApproximateArrivalTimestamp: at.Add(time.Duration(i) * time.Millisecond), Aggregated: true}
	}
	return out
}

// heapPeak keeps the largest live heap seen (as the last garbage collection marked it), read without stopping
// the world.
type heapPeak struct {
	max     uint64
	samples []metrics.Sample
}

func (h *heapPeak) sample() {
	if h.samples == nil {
		h.samples = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		runtime.GC() // start from what the benchmark itself holds
	}
	metrics.Read(h.samples)
	h.max = max(h.max, h.samples[0].Value.Uint64())
}
