package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/s3sink"
	"github.com/streamproc/streamproc/services/telemetry"
)

// TestBinaryWritesTheStreamToS3 runs the consumer binary with PROCESSOR=s3 against the emulators: the records land
// in objects at the prefix, and SIGTERM flushes the open objects before the process exits 0.
func TestBinaryWritesTheStreamToS3(t *testing.T) {
	// GIVEN a stream of records, a bucket, and the consumer binary configured for the S3 sink with long flushes
	e := emulatortest.StartForTest(t, emulator.Options{Kinesis: true, DynamoDB: true, S3: true})
	ctx := context.Background()
	kc, sc := e.KinesisClient(), e.S3Client()
	const stream, bucket, n = "s3-binary", "lake-bucket", 50
	if err := emulator.CreateStream(ctx, kc, stream, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		data := fmt.Sprintf("record-%d", i)
		want = append(want, data)
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream),
			PartitionKey: aws.String(fmt.Sprint("k", i)), Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "consumer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"AWS_ACCESS_KEY_ID=", settings.EnvStreamName + "=" + stream, settings.EnvApplicationName + "=s3-app",
		settings.EnvKinesisEndpoint + "=" + e.KinesisEndpoint, settings.EnvDynamoDBEndpoint + "=" + e.DynamoDBEndpoint,
		settings.EnvS3Endpoint + "=" + e.S3Endpoint, settings.EnvProcessor + "=" + settings.ProcessorS3,
		settings.EnvS3Bucket + "=" + bucket, settings.EnvS3SpillDir + "=" + dir, settings.EnvS3MaxObjectAge + "=1h",
		settings.EnvPollIdleInterval + "=200ms", settings.EnvMetricsInterval + "=200ms", settings.EnvWorkerID + "=w1"}
	out, exited := startBinary(t, cmd)
	// WHEN it has processed every record (into objects still open: they flush after an hour) and gets SIGTERM
	eventually.Succeeds(t, time.Minute, func() error {
		if got := recordsProcessed(out.String()); got < n {
			return fmt.Errorf("%d of %d records processed\n%s", got, n, out.String())
		}
		return nil
	})
	if objects := readLake(t, sc, bucket, ""); len(objects) != 0 {
		t.Fatalf("records in objects before SIGTERM: %v; want them all in open objects", objects)
	}
	terminate(t, cmd, exited, out)
	// THEN it exits 0 and every record is in an object under the default prefix, once
	got := readLake(t, sc, bucket, settings.DefaultS3Prefix+"/")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("records in the bucket %v, want each of %v once\n%s", got, want, out.String())
	}
}

// startBinary starts cmd with its output in out; exited receives its end.
func startBinary(t *testing.T, cmd *exec.Cmd) (out *telemetry.SyncBuffer, exited <-chan error) {
	t.Helper()
	out = &telemetry.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return out, done
}

// terminate sends the consumer SIGTERM and fails t unless it exits 0 within 30 s; out is its output.
func terminate(t *testing.T, cmd *exec.Cmd, exited <-chan error, out *telemetry.SyncBuffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 30 s after SIGTERM\n%s", out.String())
	}
}

// readLake returns the payload of every record in the objects under prefix.
func readLake(t *testing.T, sc *s3.Client, bucket, prefix string) []string {
	t.Helper()
	list, err := sc.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list.Contents {
		obj, err := s3sink.ReadObject(context.Background(), sc, bucket, *o.Key)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range obj.Rows {
			out = append(out, string(r.Data))
		}
	}
	return out
}

// recordsProcessed sums the RecordsProcessed counters of the EMF lines in out.
func recordsProcessed(out string) int {
	var sum float64
	for line := range strings.SplitSeq(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			v, _ := m[kcl.MetricRecordsProcessed].(float64)
			sum += v
		}
	}
	return int(sum)
}
