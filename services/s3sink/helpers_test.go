package s3sink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
)

var emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true, DynamoDB: true, S3: true}}

func TestMain(m *testing.M) {
	if os.Getenv(crashWorkerEnv) != "" {
		os.Exit(runCrashWorker())
	}
	os.Exit(emulators.Run(m))
}

var bucketCount atomic.Int64

// newBucket creates an empty bucket on moto and returns its name.
func newBucket(t testing.TB, client *s3.Client) string {
	t.Helper()
	name := fmt.Sprintf("sink-%d-%d", time.Now().UnixNano()%1e9, bucketCount.Add(1))
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// testRecords returns n records of shard shardID from index from on, each with a payload of size bytes (at least
// its own name): KPL-style, three user records share each sequence number, and five partition keys take turns.
func testRecords(shardID string, from, n, size int) []kcl.Record {
	base := time.Date(2025, 3, 9, 23, 59, 59, 0, time.UTC)
	out := make([]kcl.Record, 0, n)
	for i := from; i < from+n; i++ {
		data := []byte(fmt.Sprintf("record-%d-", i))
		if len(data) < size {
			data = append(data, bytes.Repeat([]byte{'x'}, size-len(data))...)
		}
		out = append(out, kcl.Record{
			ShardID:                     shardID,
			SequenceNumber:              fmt.Sprintf("4959%052d", i/3),
			SubSequenceNumber:           int64(i % 3),
			PartitionKey:                "key-" + strconv.Itoa(i%5),
			Data:                        data,
			ApproximateArrivalTimestamp: base.Add(time.Duration(i) * 100 * time.Millisecond),
			Aggregated:                  true,
		})
	}
	return out
}

// fakeCheckpointer records checkpoints; errs are returned by the next calls, one each, before they succeed.
type fakeCheckpointer struct {
	mu          sync.Mutex
	checkpoints []string // "seq/sub", or SHARD_END
	errs        []error
}

func (c *fakeCheckpointer) Checkpoint(context.Context) error {
	return c.record(kcl.CheckpointShardEnd)
}

func (c *fakeCheckpointer) CheckpointAt(_ context.Context, seq string, sub int64) error {
	return c.record(position{seq, sub}.String())
}

func (c *fakeCheckpointer) record(at string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		err := c.errs[0]
		c.errs = c.errs[1:]
		return err
	}
	c.checkpoints = append(c.checkpoints, at)
	return nil
}

func (c *fakeCheckpointer) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.checkpoints)
}

// at names the position of records[i], as checkpoints are recorded.
func at(records []kcl.Record, i int) string { return positionOf(&records[i]).String() }

// countingRecorder keeps the sum of each metric, by name and the dimensions' values.
type countingRecorder struct {
	mu   sync.Mutex
	sums map[string]float64
}

func (r *countingRecorder) Add(name string, _ telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sums == nil {
		r.sums = map[string]float64{}
	}
	for _, d := range dims {
		name += "/" + d.Value
	}
	r.sums[name] += v
}

func (r *countingRecorder) Observe(name string, u telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	r.Add(name+"#n", u, 1, dims...)
}

func (r *countingRecorder) get(name string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sums[name]
}

// object is one object of a bucket, read back.
type object = Object

// listObjects reads every object of bucket, in key order.
func listObjects(t testing.TB, client *s3.Client, bucket string) []object {
	t.Helper()
	var out []object
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list objects: %v", err)
		}
		for _, o := range page.Contents {
			obj, err := ReadObject(context.Background(), client, bucket, aws.ToString(o.Key))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, obj)
		}
	}
	return out
}

// checkObjects fails t unless the objects hold exactly the records whose payloads are want, each record in one
// object once, and each object is whole: named after its first record, its metadata naming its last record and
// its count, its records in shard order.
func checkObjects(t testing.TB, prefix string, objects []object, want []string) {
	t.Helper()
	seen := map[string]string{} // data -> key
	for _, o := range objects {
		checkObjectWhole(t, prefix, o)
		for _, r := range o.Rows {
			if prev, dup := seen[string(r.Data)]; dup {
				t.Errorf("record %.40q is in %s and in %s", r.Data, prev, o.Key)
			}
			seen[string(r.Data)] = o.Key
		}
	}
	for _, d := range want {
		if _, ok := seen[d]; !ok {
			t.Errorf("record %.40q is in no object", d)
		}
		delete(seen, d)
	}
	for data, key := range seen {
		t.Errorf("object %s holds %.40q, which was never sent", key, data)
	}
}

// payloads returns the records' payloads.
func payloads(records []kcl.Record) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = string(r.Data)
	}
	return out
}

// checkObjectWhole fails t unless o is named after its first record and its metadata names its last.
func checkObjectWhole(t testing.TB, prefix string, o object) {
	t.Helper()
	if len(o.Rows) == 0 {
		t.Errorf("object %s is empty", o.Key)
		return
	}
	first, last := o.Rows[0], o.Rows[len(o.Rows)-1]
	f, _ := FormatOfKey(o.Key)
	wantKey := ObjectKey(prefix, f, &kcl.Record{ShardID: first.ShardID, SequenceNumber: first.SequenceNumber,
		SubSequenceNumber: first.SubSequenceNumber, ApproximateArrivalTimestamp: first.ApproximateArrivalTimestamp})
	if o.Key != wantKey {
		t.Errorf("object %s: want the key of its first record, %s", o.Key, wantKey)
	}
	lastPos, err := lastPositionOf(o.Metadata)
	if err != nil || lastPos != (position{last.SequenceNumber, last.SubSequenceNumber}) {
		t.Errorf("object %s: metadata %v (%v); want its last record %s/%d", o.Key, o.Metadata, err, last.SequenceNumber, last.SubSequenceNumber)
	}
	if o.Metadata[MetadataRecords] != strconv.Itoa(len(o.Rows)) {
		t.Errorf("object %s: metadata says %s records; it holds %d", o.Key, o.Metadata[MetadataRecords], len(o.Rows))
	}
	for i := 1; i < len(o.Rows); i++ {
		a, b := o.Rows[i-1], o.Rows[i]
		if (position{a.SequenceNumber, a.SubSequenceNumber}).compare(position{b.SequenceNumber, b.SubSequenceNumber}) >= 0 {
			t.Errorf("object %s: record %d (%s/%d) is not after record %d", o.Key, i, b.SequenceNumber, b.SubSequenceNumber, i-1)
		}
	}
}

// ranges summarizes objects as the payload names of their first and last records, for readable comparisons.
func ranges(objects []object) []string {
	var out []string
	for _, o := range objects {
		first, last := o.Rows[0].Data, o.Rows[len(o.Rows)-1].Data
		out = append(out, string(bytes.TrimRight(first, "x"))+".."+string(bytes.TrimRight(last, "x")))
	}
	return out
}

// testLogger writes the sink's logs to the test's log when it fails.
func testLogger(t testing.TB) *slog.Logger {
	buf := &telemetry.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// sortByFirst orders objects by their first record's position.
func sortByFirst(objects []object) {
	slices.SortFunc(objects, func(a, b object) int {
		return (position{a.Rows[0].SequenceNumber, a.Rows[0].SubSequenceNumber}).compare(
			position{b.Rows[0].SequenceNumber, b.Rows[0].SubSequenceNumber})
	})
}
