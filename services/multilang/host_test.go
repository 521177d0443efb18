package multilang_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/multilang"
)

// TestProcessorsRunUnchanged: a processor written with the Node KCL (aws-kcl) and the project's Python processor
// consume an aggregated stream: each record exactly once in a clean run, checkpoints in the lease table with the
// KCL's schema, and a restart resumes after the checkpoint.
func TestProcessorsRunUnchanged(t *testing.T) {
	tests := map[string]struct {
		command func(*testing.T) []string
	}{
		"node aws-kcl": {nodeProcessor},
		"python":       {pythonProcessor},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN an aggregated stream of 2 shards
			h := newHarness(t, 2)
			h.put(400)
			cfg := multilang.Config{Command: tc.command(t), Env: h.processorEnv()}
			// WHEN a worker runs the processor, then stops gracefully
			w := h.startWorker("worker-1", cfg)
			times := h.waitAllProcessed(time.Minute)
			w.stop(t)
			// THEN every record was processed exactly once
			h.checkExactlyOnce(times)
			// AND the lease table holds the checkpoints, released, as the Java KCL writes them
			checkpointed := h.checkReleasedAtTheLastRecord()
			h.checkKCLSchema()

			// WHEN more records come and a new worker starts
			h.put(200)
			h.startWorker("worker-2", cfg)
			times = h.waitAllProcessed(time.Minute)
			// THEN its processors start after the checkpoints and nothing is processed twice
			h.checkExactlyOnce(times)
			for _, e := range eventsOf(h.events(), "initialize")[2:] {
				if want := checkpointed[e.Shard]; e.SequenceNumber == nil || *e.SequenceNumber != want {
					t.Errorf("restarted processor of %s initialized at %v, want the checkpoint %s", e.Shard, e.SequenceNumber, want)
				}
			}
		})
	}
}

// checkReleasedAtTheLastRecord checks every lease is released and checkpointed at its shard's last record
// processed, and returns the checkpoints by shard.
func (h *harness) checkReleasedAtTheLastRecord() map[string]string {
	h.t.Helper()
	last := map[string]processed{}
	for _, p := range h.processed() {
		last[p.Shard] = p
	}
	out := map[string]string{}
	for _, l := range h.leases() {
		out[l.Key] = l.Checkpoint
		want := last[l.Key]
		if l.Owner != "" || l.Checkpoint != want.Seq || l.CheckpointSubSequenceNumber != want.Sub {
			h.t.Errorf("lease %s: owner %q, checkpoint %s/%d; want released at the last record %s/%d",
				l.Key, l.Owner, l.Checkpoint, l.CheckpointSubSequenceNumber, want.Seq, want.Sub)
		}
	}
	return out
}

// checkKCLSchema reads the lease items raw: the attribute names and types are the Java KCL's.
func (h *harness) checkKCLSchema() {
	h.t.Helper()
	out, err := h.ddb.Scan(h.t.Context(), &dynamodb.ScanInput{TableName: aws.String(h.table)})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, item := range out.Items {
		for _, attr := range []string{"leaseKey", "leaseCounter", "checkpoint", "checkpointSubSequenceNumber", "ownerSwitchesSinceCheckpoint"} {
			if _, ok := item[attr]; !ok {
				h.t.Errorf("lease item %v lacks the KCL attribute %s", item["leaseKey"], attr)
			}
		}
	}
}

// TestFailingChildrenSkipNothing: a child that is killed mid-batch, exits 1, hangs, prints stray text or breaks the
// protocol is replaced, and every record is still processed.
func TestFailingChildrenSkipNothing(t *testing.T) {
	tests := map[string]struct {
		fault string
		// kill, when set, kills the first child with SIGKILL once it processed some records.
		kill bool
		// wantLog is part of the host's log line that says what the child did.
		wantLog string
		// restarts tells whether the shard restarts from its checkpoint.
		restarts bool
	}{
		"killed mid-batch":  {kill: true, wantLog: "signal: killed", restarts: true},
		"exits 1":           {fault: "exit1", wantLog: "exit status 1", restarts: true},
		"hangs":             {fault: "hang", wantLog: "did not answer processRecords within 5s", restarts: true},
		"prints stray text": {fault: "stray", wantLog: "stray text from the processor"},
		"answers for the wrong action": {fault: "wrong-status",
			wantLog: `status for \"initialize\" while \"processRecords\" was running`, restarts: true},
		"sends an unknown action": {fault: "unknown-action", wantLog: `not \"commit\"`, restarts: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a shard of aggregated records and a processor that fails once, in its second batch
			h := newHarness(t, 1)
			h.put(300)
			env := h.processorEnv("FAULT="+tc.fault, "SLOW_MS=2")
			cfg := multilang.Config{Command: pythonProcessor(t), Env: env}
			if tc.fault == "hang" {
				// Long enough for a loaded machine to start the next child, short enough for the test.
				cfg.Timeout = 5 * time.Second
			}
			// WHEN a worker runs it
			h.startWorker("worker-1", cfg)
			if tc.kill {
				h.killFirstChildAfterRecords(20)
			}
			// THEN every record is processed, and the log says what the child did
			times := h.waitAllProcessed(time.Minute)
			h.waitLogged(10*time.Second, tc.wantLog)
			if tc.restarts {
				// AND a new child started at the checkpoint
				eventually.Succeeds(t, 30*time.Second, func() error {
					if n := len(eventsOf(h.events(), "initialize")); n < 2 {
						return errNotYet(n, 2)
					}
					return nil
				})
				return
			}
			if n := len(eventsOf(h.events(), "initialize")); n != 1 {
				t.Errorf("%d children started, want 1: stray lines are skipped, not a failure", n)
			}
			h.checkExactlyOnce(times)
		})
	}
}

// killFirstChildAfterRecords waits until the first child processed n records and kills it with SIGKILL.
func (h *harness) killFirstChildAfterRecords(n int) {
	h.t.Helper()
	var pid int
	eventually.Succeeds(h.t, 30*time.Second, func() error {
		ps := h.processed()
		if len(ps) < n {
			return errNotYet(len(ps), n)
		}
		pid = ps[0].PID
		return nil
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		h.t.Fatalf("kill the record processor %d: %v", pid, err)
	}
}

// TestRefusedCheckpointReachesTheChild: checkpoints before the last checkpoint and past the last record are refused
// with the Java checkpointer's IllegalArgumentException, and the processor goes on.
func TestRefusedCheckpointReachesTheChild(t *testing.T) {
	h := newHarness(t, 1)
	h.put(300)
	h.startWorker("worker-1", multilang.Config{Command: pythonProcessor(t), Env: h.processorEnv("FAULT=refused-checkpoint")})
	times := h.waitAllProcessed(time.Minute)
	h.checkExactlyOnce(times)
	var refused, accepted int
	for _, e := range eventsOf(h.events(), "checkpoint") {
		switch {
		case e.Error == nil:
			accepted++
		case *e.Error == "IllegalArgumentException":
			refused++
		default:
			t.Errorf("checkpoint answered %s", *e.Error)
		}
	}
	if refused != 2 || accepted == 0 {
		t.Errorf("%d checkpoints refused, %d accepted; want 2 refused (before the checkpoint, past the last record) and the others accepted", refused, accepted)
	}
}

// TestLeaseLostWhenAPeerTakesTheLease: a second worker takes one of the first worker's two leases; the first
// worker's child of that shard is told leaseLost and ends; nothing is skipped.
func TestLeaseLostWhenAPeerTakesTheLease(t *testing.T) {
	h := newHarness(t, 2)
	h.put(200)
	cfg := multilang.Config{Command: pythonProcessor(t), Env: h.processorEnv()}
	h.startWorker("worker-1", cfg)
	h.waitAllProcessed(time.Minute)
	h.startWorker("worker-2", cfg)
	eventually.Succeeds(t, 30*time.Second, func() error {
		if lost := eventsOf(h.events(), "leaseLost"); len(lost) == 0 {
			return errNotYet(0, 1)
		}
		return nil
	})
	h.put(200)
	h.waitAllProcessed(time.Minute)
	h.waitLogged(10*time.Second, "record processor exited", `"worker_id":"worker-1"`)
}

// TestShardEndedAfterAReshard: the child of a parent shard gets shardEnded and must checkpoint (SHARD_END); a child
// that does not is replaced and the shard's end is delivered again. The children shards are read after.
func TestShardEndedAfterAReshard(t *testing.T) {
	tests := map[string]struct {
		env      []string
		protocol int
		// wantEvent is what the parent's child is told at the shard's end.
		wantEvent string
	}{
		"checkpoints at the end":                 {wantEvent: "shardEnded"},
		"does not checkpoint the first time":     {env: []string{"FAULT=no-shard-end-checkpoint"}, wantEvent: "shardEnded"},
		"protocol version 1: shutdown TERMINATE": {protocol: 1, wantEvent: "shutdown"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN one shard with records, read by a worker
			h := newHarness(t, 1)
			h.put(150)
			h.startWorker("worker-1", multilang.Config{Command: pythonProcessor(t), Env: h.processorEnv(tc.env...), ProtocolVersion: tc.protocol})
			h.waitAllProcessed(time.Minute)
			// WHEN the stream is resharded and more records come
			h.reshard(2)
			h.put(150)
			// THEN the parent's child is told its shard ended and checkpoints it, and the children are read
			times := h.waitAllProcessed(time.Minute)
			if tc.env == nil {
				h.checkExactlyOnce(times)
			}
			ended := eventsOf(h.events(), tc.wantEvent)
			if len(ended) == 0 || ended[0].Shard != "shardId-000000000000" {
				t.Fatalf("events %q: %+v, want one for the parent shard", tc.wantEvent, ended)
			}
			for _, l := range h.leases() {
				if l.Key == "shardId-000000000000" && !l.Finished() {
					t.Errorf("parent lease at %s, want SHARD_END", l.Checkpoint)
				}
			}
		})
	}
}

// reshard changes the stream's open shard count and waits until it is ACTIVE again.
func (h *harness) reshard(shards int32) {
	h.t.Helper()
	if _, err := h.kc.UpdateShardCount(h.t.Context(), &kinesis.UpdateShardCountInput{StreamName: aws.String(h.stream),
		TargetShardCount: aws.Int32(shards), ScalingType: "UNIFORM_SCALING"}); err != nil {
		h.t.Fatal(err)
	}
	emulatortest.WaitStreamActive(h.t.Context(), h.t, h.kc, h.stream)
}

// TestShutdownRequestedOnGracefulStop: stopping the worker (SIGTERM in the consumer) gives each child
// shutdownRequested, where it checkpoints, then leaseLost; the leases are released at the checkpoints.
func TestShutdownRequestedOnGracefulStop(t *testing.T) {
	h := newHarness(t, 2)
	h.put(200)
	w := h.startWorker("worker-1", multilang.Config{Command: pythonProcessor(t), Env: h.processorEnv("CHECKPOINT=never")})
	h.waitAllProcessed(time.Minute)
	w.stop(t)
	events := h.events()
	if n := len(eventsOf(events, "shutdownRequested")); n != 2 {
		t.Errorf("%d shutdownRequested events, want one per shard (2)", n)
	}
	if n := len(eventsOf(events, "leaseLost")); n != 2 {
		t.Errorf("%d leaseLost events after the shutdown, want 2", n)
	}
	h.checkReleasedAtTheLastRecord()
}

// TestVersion1NodeProcessor: a processor written against the library's first version (one shutdown method)
// runs under aws-kcl, which turns shardEnded into shutdown TERMINATE.
func TestVersion1NodeProcessor(t *testing.T) {
	h := newHarness(t, 1)
	h.put(100)
	h.startWorker("worker-1", multilang.Config{Command: nodeProcessor(t), Env: h.processorEnv("PROCESSOR_VERSION=1")})
	h.waitAllProcessed(time.Minute)
	h.reshard(2)
	h.put(100)
	times := h.waitAllProcessed(time.Minute)
	h.checkExactlyOnce(times)
	var terminate bool
	for _, e := range eventsOf(h.events(), "shutdown") {
		terminate = terminate || (e.Reason == "TERMINATE" && e.Shard == "shardId-000000000000")
	}
	if !terminate {
		t.Errorf("no shutdown TERMINATE for the parent shard in %+v", h.events())
	}
}

// TestChildStartFailureGivesTheLeaseUp: a command that cannot start is retried MaxProcessAttempts times, then the
// worker gives the lease up; the log says why.
func TestChildStartFailureGivesTheLeaseUp(t *testing.T) {
	h := newHarness(t, 1)
	h.put(10)
	h.startWorker("worker-1", multilang.Config{Command: []string{"/nonexistent/processor"}})
	h.waitLogged(30*time.Second, "record processor could not start", "/nonexistent/processor")
	h.waitLogged(60*time.Second, "giving the lease up so another worker retries")
}

func errNotYet(got, want int) error { return fmt.Errorf("%d so far, want %d", got, want) }
