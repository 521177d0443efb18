package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/internal/jsonl"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
)

// TestBinaryWithAMultiLangProcessorStopsOnSIGTERM runs the consumer binary with a MultiLang record processor from a
// properties file, as the Java daemon is run: on SIGTERM each child gets shutdownRequested, where it checkpoints,
// then leaseLost; the process exits 0 with the leases released at the last record.
func TestBinaryWithAMultiLangProcessorStopsOnSIGTERM(t *testing.T) {
	// GIVEN a stream of records and the consumer binary with the test Python processor
	e := emulatortest.StartForTest(t, emulator.Options{Kinesis: true, DynamoDB: true})
	ctx := context.Background()
	kc := e.KinesisClient()
	const stream, n = "multilang-binary", 40
	if err := emulator.CreateStream(ctx, kc, stream, 1); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"),
			Data: fmt.Appendf(nil, "record-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "consumer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	processor, err := filepath.Abs(filepath.Join("..", "multilang", "testdata", "processor.py"))
	if err != nil {
		t.Fatal(err)
	}
	props := filepath.Join(dir, "app.properties")
	if err := os.WriteFile(props, fmt.Appendf(nil, "executableName = python3 %s\nstreamName = %s\napplicationName = multilang-app\n"+
		"initialPositionInStream = TRIM_HORIZON\nretrievalMode = POLLING\nidleTimeBetweenReadsInMillis = 200\n"+
		"AwsCredentialsProvider = DefaultCredentialsProvider\nprocessingLanguage = python/3\n", processor, stream), 0o644); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(bin, "--properties-file", props)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "AWS_ACCESS_KEY_ID=", settings.EnvKinesisEndpoint + "=" + e.KinesisEndpoint,
		settings.EnvDynamoDBEndpoint + "=" + e.DynamoDBEndpoint, settings.EnvWorkerID + "=w1",
		"CHECKPOINT=never", "RECORDS_FILE=" + filepath.Join(dir, "records.jsonl"), "EVENTS_FILE=" + events}
	out, exited := startBinary(t, cmd)
	// WHEN every record was processed (and never checkpointed), the process gets SIGTERM
	eventually.Succeeds(t, time.Minute, func() error {
		if got := len(readEvents(t, filepath.Join(dir, "records.jsonl"))); got < n {
			return fmt.Errorf("%d of %d records processed\n%s", got, n, out.String())
		}
		return nil
	})
	terminate(t, cmd, exited, out)
	// THEN it exits 0, its child got shutdownRequested then leaseLost, and the lease is released at the last record
	var lifecycle []string
	for _, e := range readEvents(t, events) {
		lifecycle = append(lifecycle, e["event"].(string))
	}
	if got := strings.Join(lifecycle, " "); got != "initialize shutdownRequested checkpoint leaseLost" {
		t.Errorf("child's lifecycle %q, want initialize shutdownRequested checkpoint leaseLost", got)
	}
	table, _ := kcl.NewLeaseTable(e.DynamoDBClient(), "multilang-app")
	leases, err := table.List(ctx)
	if err != nil || len(leases) != 1 || leases[0].Owner != "" || leases[0].Checkpoint == kcl.CheckpointTrimHorizon {
		t.Errorf("leases %+v (%v), want one released past TRIM_HORIZON", leases, err)
	}
}

// readEvents reads a JSON-lines file the test processor wrote.
func readEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	events, err := jsonl.Read[map[string]any](path)
	if err != nil {
		t.Fatal(err)
	}
	return events
}
