package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kpl"
)

// TestRunServesARecordAndStopsEverything runs the local pipeline as `make local` does, sends the README's request,
// finds the record in the stream, and checks that stopping leaves none of the processes it started.
func TestRunServesARecordAndStopsEverything(t *testing.T) {
	// GIVEN the local pipeline on a free port
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan pipeline, 1)
	result := make(chan error, 1)
	var out strings.Builder
	go func() {
		result <- run(ctx, config{Port: port, Shards: 2, Stream: "local-test", Dir: t.TempDir()}, &out, func(p pipeline) { ready <- p })
	}()
	var p pipeline
	select {
	case p = <-ready:
	case err := <-result:
		t.Fatalf("run ended before the pipeline was ready: %v\n%s", err, out.String())
	case <-time.After(3 * time.Minute):
		t.Fatal("pipeline not ready after 3 minutes")
	}
	if !strings.Contains(out.String(), "curl -d '{\"data\":\"This is a testing record\"}'") {
		t.Errorf("banner lacks the curl command:\n%s", out.String())
	}

	// WHEN the README's request is sent
	resp, err := http.Post(p.producerURL+"/", "application/json", strings.NewReader(`{"data":"This is a testing record"}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST status %d: %s", resp.StatusCode, body)
	}
	var ack struct{ ShardID, SequenceNumber string }
	if err := json.Unmarshal(body, &ack); err != nil || ack.ShardID == "" || ack.SequenceNumber == "" {
		t.Fatalf("acknowledgement %s: %v", body, err)
	}

	// THEN the record is in the stream at the acknowledged position
	kc := p.emulators.KinesisClient()
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("local-test"), ShardId: aws.String(ack.ShardID),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(ack.SequenceNumber),
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	got, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(got.Records) == 0 {
		t.Fatalf("GetRecords: %d records, %v", len(got.Records), err)
	}
	users, err := kpl.Deaggregate(nil, aws.ToString(got.Records[0].PartitionKey), got.Records[0].Data)
	if err != nil {
		t.Fatalf("deaggregate: %v", err)
	}
	if len(users) == 0 || string(users[0].Data) != "This is a testing record" {
		t.Fatalf("record in the stream = %+v; want the data sent", users)
	}

	// WHEN stopped
	pids := p.emulators.PIDs()
	for _, s := range p.services {
		pids = append(pids, s.pid())
	}
	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of cancellation")
	}
	// THEN no process it started is left
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists (kill 0: %v)", pid, err)
		}
	}
}

func TestParseFlagsRejectsBadShards(t *testing.T) {
	var errOut strings.Builder
	if _, err := parseFlags([]string{"-shards", "0"}, &errOut); err == nil {
		t.Fatal("want an error for -shards 0")
	}
	if !strings.Contains(errOut.String(), "-shards must be at least 1") {
		t.Errorf("message %q does not say what was wrong", errOut.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
