package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/telemetry"
)

func TestECSTaskID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/abc/task" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"TaskARN":"arn:aws:ecs:us-east-1:111122223333:task/cluster/0123456789abcdef"}`)
	}))
	defer srv.Close()
	if got := defaultWorkerID(context.Background(), srv.URL+"/v4/abc"); got != "0123456789abcdef" {
		t.Fatalf("worker id %q", got)
	}
	// No metadata endpoint: the hostname.
	if got := defaultWorkerID(context.Background(), ""); got == "" {
		t.Fatal("empty worker id")
	}
	// A broken endpoint falls back too.
	if got := defaultWorkerID(context.Background(), srv.URL+"/missing"); got == "" || got == "0123456789abcdef" {
		t.Fatalf("worker id %q", got)
	}
}

// fakeCheckpointer counts checkpoints.
type fakeCheckpointer struct {
	calls int
	err   error
}

func (f *fakeCheckpointer) Checkpoint(context.Context) error { f.calls++; return f.err }
func (f *fakeCheckpointer) CheckpointAt(context.Context, string, int64) error {
	f.calls++
	return f.err
}

func TestStdoutProcessor(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	start := now
	var out bytes.Buffer
	p := &stdoutProcessor{out: &out, log: slog.New(slog.DiscardHandler), checkpointRecords: 3,
		checkpointInterval: time.Minute, now: func() time.Time { return now }}
	ctx := context.Background()
	if err := p.Initialize(ctx, kcl.InitializeInput{ShardID: "shardId-000000000001"}); err != nil {
		t.Fatal(err)
	}
	cp := &fakeCheckpointer{}
	rec := func(seq string, sub int64, data string) kcl.Record {
		return kcl.Record{ShardID: "shardId-000000000001", SequenceNumber: seq, SubSequenceNumber: sub, PartitionKey: "k",
			Data: []byte(data), ApproximateArrivalTimestamp: now}
	}
	steps := []struct {
		recs      []kcl.Record
		advance   time.Duration
		wantCalls int
	}{
		{recs: []kcl.Record{rec("1", 0, "a"), rec("1", 1, "b")}, wantCalls: 0},
		{recs: []kcl.Record{rec("2", 0, "\xff\xfe")}, wantCalls: 1}, // 3 records: checkpoint
		{recs: []kcl.Record{rec("3", 0, "c")}, wantCalls: 1},
		{recs: []kcl.Record{rec("4", 0, "d")}, advance: time.Minute, wantCalls: 2}, // interval elapsed
		{recs: nil, advance: time.Minute, wantCalls: 2},                            // idle, nothing pending
		{recs: []kcl.Record{rec("4", 1, "d2")}, wantCalls: 3},                      // interval elapsed while idle
		{recs: []kcl.Record{rec("4", 2, "d3")}, wantCalls: 3},                      // a burst of fewer than 3
		{recs: nil, advance: 30 * time.Second, wantCalls: 3},                       // idle, interval not due
		{recs: nil, advance: 30 * time.Second, wantCalls: 4},                       // idle, interval due: checkpoint
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		if err := p.ProcessRecords(ctx, kcl.ProcessRecordsInput{Records: st.recs, Checkpointer: cp}); err != nil {
			t.Fatal(err)
		}
		if cp.calls != st.wantCalls {
			t.Fatalf("step %d: %d checkpoints, want %d", i, cp.calls, st.wantCalls)
		}
	}
	var lines []recordLine
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var l recordLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	if lines[1].SubSequenceNumber != 1 || *lines[1].Data != "b" || lines[2].Data != nil || lines[2].DataBase64 != "//4=" ||
		lines[0].ShardID != "shardId-000000000001" || lines[0].PartitionKey != "k" || !lines[0].ArrivalTime.Equal(start) {
		t.Fatalf("lines: %+v", lines)
	}
	// A lost lease is returned; another checkpoint failure is retried later.
	cp.err = fmt.Errorf("checkpoint: %w", kcl.ErrLeaseLost)
	if err := p.ProcessRecords(ctx, kcl.ProcessRecordsInput{Records: []kcl.Record{rec("5", 0, "e"), rec("6", 0, "f"), rec("7", 0, "g")}, Checkpointer: cp}); !errors.Is(err, kcl.ErrLeaseLost) {
		t.Fatalf("got %v, want ErrLeaseLost", err)
	}
	cp.err = errors.New("throttled")
	if err := p.ProcessRecords(ctx, kcl.ProcessRecordsInput{Records: []kcl.Record{rec("8", 0, "h")}, Checkpointer: cp}); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

// TestRunAgainstEmulators runs the service against kinesis-local and dynalite: records become JSON lines, and a
// graceful stop checkpoints and releases the leases.
func TestRunAgainstEmulators(t *testing.T) {
	e := emulatortest.StartForTest(t, emulator.Options{Kinesis: true, DynamoDB: true})
	ctx := context.Background()
	kc := e.KinesisClient()
	stream := "consumer-test"
	if err := emulator.CreateStream(ctx, kc, stream, 2); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream),
			PartitionKey: aws.String(fmt.Sprint("k", i)), Data: []byte(fmt.Sprint("record-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	s, err := settings.Load(envconfig.Lookup(map[string]string{settings.EnvStreamName: stream, settings.EnvApplicationName: "consumer-app",
		settings.EnvKinesisEndpoint: e.KinesisEndpoint, settings.EnvDynamoDBEndpoint: e.DynamoDBEndpoint, settings.EnvWorkerID: "w1",
		settings.EnvCheckpointRecords: "10",
		// Short, so that leases are renewed (CurrentLeases is observed per renewal) while the test runs, and metrics
		// are written while it runs.
		settings.EnvFailoverTime: "900ms", settings.EnvMetricsInterval: "100ms"}))
	if err != nil {
		t.Fatal(err)
	}
	out := &telemetry.SyncBuffer{}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, s, out, slog.New(slog.NewJSONHandler(out, nil))) }()
	eventually.Succeeds(t, 30*time.Second, func() error {
		if got := strings.Count(out.String(), `"sequence_number"`); got < n {
			return fmt.Errorf("%d of %d record lines", got, n)
		}
		// CurrentLeases is observed at each renewal: wait for one, so the graceful stop is tested with renewed leases.
		if !strings.Contains(out.String(), `"Name":"`+kcl.MetricCurrentLeases+`"`) {
			return errors.New("no lease renewal reported (no CurrentLeases metric) yet")
		}
		return nil
	})
	cancel() // like SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	checkEMF(t, out.String(), map[string]float64{kcl.MetricRecordsProcessed: n, kcl.MetricLeasesTaken: 2},
		[]string{kcl.MetricBytesProcessed, kcl.MetricCurrentLeases})
	for i := range n {
		if !strings.Contains(out.String(), fmt.Sprintf(`"data":"record-%d"`, i)) {
			t.Fatalf("record %d missing", i)
		}
	}
	table, _ := kcl.NewLeaseTable(e.DynamoDBClient(), "consumer-app")
	leases, err := table.List(ctx)
	if err != nil || len(leases) != 2 {
		t.Fatalf("leases %+v, %v", leases, err)
	}
	for _, l := range leases {
		if l.Owner != "" || l.Checkpoint == kcl.CheckpointTrimHorizon {
			t.Fatalf("lease after graceful stop: %+v (want released and checkpointed)", l)
		}
	}
	if !strings.Contains(out.String(), `"_aws"`) {
		t.Fatal("no EMF metrics line written on shutdown")
	}
	// Log lines carry each stable key once: a duplicated key is invalid for many JSON log pipelines.
	for line := range strings.SplitSeq(out.String(), "\n") {
		for _, key := range []string{`"worker_id":`, `"stream":`, `"shard_id":`} {
			if strings.Count(line, key) > 1 {
				t.Errorf("key %s repeated in log line %s", key, line)
			}
		}
	}
}

// checkEMF reads the EMF lines of out: the counters of want must sum to the given values, and every metric of present
// must have been written at least once with a positive value.
func checkEMF(t *testing.T, out string, want map[string]float64, present []string) {
	t.Helper()
	sums := map[string]float64{}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.Contains(line, `"_aws"`) {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		aws, _ := doc["_aws"].(map[string]any)
		directives, _ := aws["CloudWatchMetrics"].([]any)
		for _, d := range directives {
			metrics, _ := d.(map[string]any)["Metrics"].([]any)
			for _, m := range metrics {
				name, _ := m.(map[string]any)["Name"].(string)
				switch v := doc[name].(type) {
				case float64:
					sums[name] += v
					seen[name] = seen[name] || v > 0
				case []any:
					for _, x := range v {
						if f, _ := x.(float64); f > 0 {
							seen[name] = true
						}
					}
				default:
					t.Fatalf("EMF metric %s has value %#v", name, doc[name])
				}
			}
		}
	}
	for name, v := range want {
		if sums[name] != v {
			t.Errorf("EMF %s = %v, want %v", name, sums[name], v)
		}
	}
	for _, name := range present {
		if !seen[name] {
			t.Errorf("EMF %s never written with a positive value", name)
		}
	}
}

func TestCommandLineTakesThePropertiesFileAsTheJavaDaemonDoes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.properties")
	if err := os.WriteFile(file, []byte("executableName = python3 processor.py\nstreamName = s\napplicationName = a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args          []string
		wantProcessor string
		wantWarning   string
		wantErr       string
	}{
		"no arguments":             {args: nil, wantErr: settings.EnvStreamName},
		"-p":                       {args: []string{"-p", file}, wantProcessor: settings.ProcessorMultiLang},
		"--properties-file":        {args: []string{"--properties-file", file}, wantProcessor: settings.ProcessorMultiLang},
		"the file alone":           {args: []string{file}, wantProcessor: settings.ProcessorMultiLang},
		"a logback file":           {args: []string{"-p", file, "-l", "logback.xml"}, wantProcessor: settings.ProcessorMultiLang, wantWarning: "logback.xml is not used"},
		"two files":                {args: []string{file, file}, wantErr: "unexpected arguments"},
		"a properties file absent": {args: []string{"-p", filepath.Join(dir, "missing.properties")}, wantErr: "missing.properties"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := loadSettings(tc.args, envconfig.Lookup(nil), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Processor != tc.wantProcessor || s.Stream != "s" {
				t.Errorf("processor %q stream %q, want %q and the file's stream", s.Processor, s.Stream, tc.wantProcessor)
			}
			if tc.wantWarning != "" && !strings.Contains(strings.Join(s.Warnings, "\n"), tc.wantWarning) {
				t.Errorf("warnings %q, want one saying %q", s.Warnings, tc.wantWarning)
			}
		})
	}
}
