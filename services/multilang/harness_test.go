package multilang_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/internal/jsonl"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/multilang"
	"github.com/streamproc/streamproc/services/telemetry"
)

var emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true, DynamoDB: true}}

func TestMain(m *testing.M) { os.Exit(emulators.Run(m)) }

// harness is a stream on kinesis-local, a lease table on dynalite, and the files a test record processor writes.
type harness struct {
	t      *testing.T
	kc     *kinesis.Client
	ddb    *dynamodb.Client
	stream string
	table  string
	dir    string
	logs   *telemetry.SyncBuffer
	// sent holds the data of every record put, in order.
	sent []string
}

// newHarness creates a stream with shards shards and a unique application (lease table) name.
func newHarness(t *testing.T, shards int) *harness {
	t.Helper()
	e := emulators.Get(t)
	name := regexp.MustCompile(`[^a-z0-9_.-]+`).ReplaceAllString(strings.ToLower(t.Name()), "-")
	name = fmt.Sprintf("%s-%d", name[:min(len(name), 60)], time.Now().UnixNano()%1e9)
	h := &harness{t: t, kc: e.KinesisClient(), ddb: e.DynamoDBClient(), stream: name, table: name + "-app",
		dir: t.TempDir(), logs: &telemetry.SyncBuffer{}}
	emulatortest.CreateStream(t.Context(), t, h.kc, h.stream, shards)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host logs:\n%s", h.logs.String())
		}
	})
	return h
}

// put writes n records with the project's KPL producer (aggregated, spread over 17 partition keys) and waits until
// Kinesis acknowledged each.
func (h *harness) put(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), time.Minute)
	defer cancel()
	// Small aggregates (about 40 records each), so that a shard's records come in several batches.
	p, err := kpl.New(kpl.Config{StreamName: h.stream, MaxBufferedTime: 20 * time.Millisecond, MaxAggregateBytes: 1024,
		Logger: slog.New(slog.DiscardHandler)}, h.kc)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	first := len(h.sent)
	for i := range n {
		data := fmt.Sprintf("record-%d", first+i)
		h.sent = append(h.sent, data)
		wg.Add(1)
		if err := p.PutAsync(kpl.Record{PartitionKey: fmt.Sprint("key-", i%17), Data: []byte(data)}, func(r kpl.Result) {
			defer wg.Done()
			if r.Err != nil {
				errs <- r.Err
			}
		}); err != nil {
			h.t.Fatal(err)
		}
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		h.t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		h.t.Fatalf("put: %v", err)
	}
}

// processorEnv is the environment of the test record processors: where they write what they process and do.
func (h *harness) processorEnv(extra ...string) []string {
	return append([]string{
		"RECORDS_FILE=" + filepath.Join(h.dir, "records.jsonl"),
		"EVENTS_FILE=" + filepath.Join(h.dir, "events.jsonl"),
		"FAULT_ONCE=" + filepath.Join(h.dir, "fault-happened"),
	}, extra...)
}

// pythonProcessor is the project's standard-library Python record processor (testdata/processor.py).
func pythonProcessor(t *testing.T) []string {
	path, err := filepath.Abs(filepath.Join("testdata", "processor.py"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{"python3", path}
}

// nodeProcessor is a record processor written with the Node KCL, aws-kcl (testdata/kcl_processor.js).
func nodeProcessor(t *testing.T) []string {
	path, err := filepath.Abs(filepath.Join("testdata", "kcl_processor.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "node_modules", "aws-kcl")); err != nil {
		t.Fatalf("aws-kcl is not installed (%v): run `make deps` (npm ci)", err)
	}
	return []string{"node", path}
}

// worker is a running kcl worker whose processors are MultiLang children.
type worker struct {
	id     string
	w      *kcl.Worker
	cancel context.CancelFunc
	done   chan error
}

// startWorker runs a worker with id over the harness's stream, its processors running command with env.
func (h *harness) startWorker(id string, cfg multilang.Config) *worker {
	h.t.Helper()
	logger := slog.New(slog.NewJSONHandler(h.logs, nil))
	cfg.Logger = logger.With("worker_id", id) // the worker adds the id to its own lines
	newProcessor, err := multilang.NewProcessorFunc(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	w, err := kcl.New(kcl.Config{
		StreamName: h.stream, LeaseTableName: h.table, WorkerID: id, NewProcessor: newProcessor,
		CreateLeaseTable: true, FailoverTime: 3 * time.Second, ShardSyncInterval: time.Second,
		PollIdleInterval: 100 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: time.Second,
		MaxRecordsPerCall: 3, // three aggregates a batch
		ShutdownTimeout:   20 * time.Second, Logger: logger,
	}, h.kc, h.ddb)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{id: id, w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { wk.done <- w.Run(ctx) }()
	h.t.Cleanup(func() { wk.stop(h.t) })
	return wk
}

// stop shuts the worker down gracefully (as SIGTERM does) and waits for it.
func (wk *worker) stop(t *testing.T) {
	t.Helper()
	if wk.cancel == nil {
		return
	}
	wk.cancel()
	wk.cancel = nil
	select {
	case err := <-wk.done:
		if err != nil {
			t.Errorf("worker %s: %v", wk.id, err)
		}
	case <-time.After(time.Minute):
		t.Errorf("worker %s did not stop within a minute", wk.id)
	}
}

// processed is one record line a test processor wrote.
type processed struct {
	Shard string `json:"shard"`
	Seq   string `json:"seq"`
	Sub   int64  `json:"sub"`
	Key   string `json:"key"`
	Data  string `json:"data"`
	PID   int    `json:"pid"`
}

// event is one lifecycle line a test processor wrote.
type event struct {
	Event             string  `json:"event"`
	Shard             string  `json:"shard"`
	PID               int     `json:"pid"`
	SequenceNumber    *string `json:"sequenceNumber"`
	SubSequenceNumber *int64  `json:"subSequenceNumber"`
	Error             *string `json:"error"`
	Reason            string  `json:"reason"`
}

func readLines[T any](t *testing.T, path string) []T {
	t.Helper()
	lines, err := jsonl.Read[T](path)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func (h *harness) processed() []processed {
	return readLines[processed](h.t, filepath.Join(h.dir, "records.jsonl"))
}
func (h *harness) events() []event {
	return readLines[event](h.t, filepath.Join(h.dir, "events.jsonl"))
}

// waitAllProcessed waits until every record put was processed at least once, and returns how many times each was.
func (h *harness) waitAllProcessed(timeout time.Duration) map[string]int {
	h.t.Helper()
	var times map[string]int
	eventually.Succeeds(h.t, timeout, func() error {
		times = map[string]int{}
		for _, p := range h.processed() {
			times[p.Data]++
		}
		var missing []string
		for _, d := range h.sent {
			if times[d] == 0 {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d records not processed, such as %v", len(missing), len(h.sent), missing[:min(5, len(missing))])
		}
		return nil
	})
	return times
}

// checkExactlyOnce fails the test when a record was processed more than once.
func (h *harness) checkExactlyOnce(times map[string]int) {
	h.t.Helper()
	var dup []string
	for d, n := range times {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s×%d", d, n))
		}
	}
	slices.Sort(dup)
	if len(dup) > 0 {
		h.t.Errorf("%d records processed more than once, such as %v", len(dup), dup[:min(5, len(dup))])
	}
}

// eventsOf returns the events named name.
func eventsOf(events []event, name string) []event {
	var out []event
	for _, e := range events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

// leases reads the lease table.
func (h *harness) leases() []kcl.Lease {
	h.t.Helper()
	table, err := kcl.NewLeaseTable(h.ddb, h.table)
	if err != nil {
		h.t.Fatal(err)
	}
	ls, err := table.List(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return ls
}

// waitLogged waits until the host logged a line containing each of parts.
func (h *harness) waitLogged(timeout time.Duration, parts ...string) string {
	h.t.Helper()
	var found string
	eventually.Succeeds(h.t, timeout, func() error {
		for line := range strings.SplitSeq(h.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				found = line
				return nil
			}
		}
		return fmt.Errorf("no host log line with %q", parts)
	})
	return found
}
