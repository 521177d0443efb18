package s3sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/kcl"
)

// The crash test runs a worker in a process of its own (this test binary, started again with crashWorkerEnv set)
// whose S3 client kills the process with SIGKILL as soon as its first upload has landed: the object is in S3 and
// the checkpoint that should follow it is never written. No deferred function, Close or LeaseLost runs.

// Environment of the crashing worker process.
const (
	crashWorkerEnv   = "S3SINK_CRASH_WORKER" // set: run the crashing worker instead of the tests
	crashStreamEnv   = "S3SINK_CRASH_STREAM"
	crashTableEnv    = "S3SINK_CRASH_TABLE"
	crashBucketEnv   = "S3SINK_CRASH_BUCKET"
	crashSpillEnv    = "S3SINK_CRASH_SPILL_DIR"
	crashKinesisEnv  = "S3SINK_CRASH_KINESIS"
	crashDynamoDBEnv = "S3SINK_CRASH_DYNAMODB"
	crashS3Env       = "S3SINK_CRASH_S3"
)

// killAfterUpload is an S3 client that kills its process once an upload landed, before anything else happens.
type killAfterUpload struct{ S3API }

func (k killAfterUpload) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	out, err := k.S3API.PutObject(ctx, in, optFns...)
	if err == nil {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	return out, err
}

// runCrashWorker is the crashing worker's main: it reads the stream until its first upload kills it. It returns
// an exit status only when it was not killed within a minute.
func runCrashWorker() int {
	e := &emulator.Emulators{KinesisEndpoint: os.Getenv(crashKinesisEnv), DynamoDBEndpoint: os.Getenv(crashDynamoDBEnv),
		S3Endpoint: os.Getenv(crashS3Env)}
	l := &lake{stream: os.Getenv(crashStreamEnv), table: os.Getenv(crashTableEnv), bucket: os.Getenv(crashBucketEnv)}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg := Config{Bucket: l.bucket, Prefix: "lake", MaxObjectBytes: 2048, MaxObjectAge: 300 * time.Millisecond,
		SpillDir: os.Getenv(crashSpillEnv), Logger: logger}
	newProcessor, err := NewProcessorFunc(cfg, killAfterUpload{e.S3Client()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, err := kcl.New(l.kclConfig("crasher", newProcessor, logger), e.KinesisClient(), e.DynamoDBClient())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = w.Run(ctx)
	fmt.Fprintln(os.Stderr, "the crashing worker was not killed within a minute")
	return 3
}

func TestWorkerKilledBetweenUploadAndCheckpoint(t *testing.T) {
	// GIVEN a worker process that is killed (SIGKILL) right after its first upload landed, before its checkpoint
	l := newLake(t, 1)
	l.put(60)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashWorkerEnv+"=1", crashStreamEnv+"="+l.stream, crashTableEnv+"="+l.table,
		crashBucketEnv+"="+l.bucket, crashSpillEnv+"="+t.TempDir(), crashKinesisEnv+"="+l.e.KinesisEndpoint,
		crashDynamoDBEnv+"="+l.e.DynamoDBEndpoint, crashS3Env+"="+l.e.S3Endpoint)
	cmd.Stderr = l.logs
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crashing worker ended with %v, want killed by SIGKILL", err)
	}
	objects := listObjects(t, l.s3, l.bucket)
	if len(objects) != 1 {
		t.Fatalf("%d objects after the crash, want the one uploaded", len(objects))
	}
	lease := l.leases()["shardId-000000000000"]
	if lease.Owner != "crasher" || lease.Checkpoint != kcl.CheckpointTrimHorizon {
		t.Fatalf("lease %+v: want it held by the dead worker, still at TRIM_HORIZON", lease)
	}
	// WHEN another worker takes the shard once the lease expires, and more records come
	metrics := &countingRecorder{}
	l.startWorker("successor", workerOptions{metrics: metrics})
	l.put(60)
	// THEN it adopts the dead worker's object instead of writing its records again, and every record lands once
	l.check(l.waitLanded(time.Minute))
	if got := metrics.get(MetricObjectsAdopted); got != 1 {
		t.Errorf("ObjectsAdopted = %v, want 1 (the dead worker's object)", got)
	}
}
