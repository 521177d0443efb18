package kcl

import (
	"context"
	"errors"
	"testing"
)

// recordingCheckpointer counts checkpoints.
type recordingCheckpointer struct{ checkpoints int }

func (c *recordingCheckpointer) Checkpoint(context.Context) error { c.checkpoints++; return nil }
func (c *recordingCheckpointer) CheckpointAt(context.Context, string, int64) error {
	return errors.New("ProcessorFunc checkpoints everything it was given")
}

func TestProcessorFuncCheckpointsWhatItsFunctionHandled(t *testing.T) {
	errBad := errors.New("bad record")
	tests := map[string]struct {
		records         int
		fnErr           error
		wantCalls       int
		wantCheckpoints int
		wantErr         error
	}{
		"a batch":       {records: 3, wantCalls: 1, wantCheckpoints: 1},
		"an empty read": {records: 0, wantCalls: 0, wantCheckpoints: 0},
		"a failure":     {records: 3, fnErr: errBad, wantCalls: 1, wantCheckpoints: 0, wantErr: errBad},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a processor made of one function
			calls := 0
			p := ProcessorFunc(func(_ context.Context, records []Record) error {
				calls++
				if len(records) != tc.records {
					t.Errorf("fn got %d records, want %d", len(records), tc.records)
				}
				return tc.fnErr
			})()
			cp := &recordingCheckpointer{}
			// WHEN it is given a batch
			err := p.ProcessRecords(context.Background(), ProcessRecordsInput{Records: make([]Record, tc.records), Checkpointer: cp})
			// THEN fn ran, and the batch is checkpointed only when fn succeeded
			if !errors.Is(err, tc.wantErr) || calls != tc.wantCalls || cp.checkpoints != tc.wantCheckpoints {
				t.Errorf("err %v, %d calls, %d checkpoints; want %v, %d, %d", err, calls, cp.checkpoints, tc.wantErr, tc.wantCalls, tc.wantCheckpoints)
			}
		})
	}
}

func TestProcessorFuncCheckpointsTheShardEnd(t *testing.T) {
	p := ProcessorFunc(func(context.Context, []Record) error { return nil })()
	cp := &recordingCheckpointer{}
	if err := p.ShardEnded(context.Background(), ShardEndedInput{Checkpointer: cp}); err != nil || cp.checkpoints != 1 {
		t.Fatalf("ShardEnded = %v with %d checkpoints, want SHARD_END checkpointed once", err, cp.checkpoints)
	}
	if err := p.ShutdownRequested(context.Background(), ShutdownRequestedInput{Checkpointer: cp}); err != nil || cp.checkpoints != 1 {
		t.Fatalf("ShutdownRequested = %v with %d checkpoints, want none more (every batch is checkpointed)", err, cp.checkpoints)
	}
}
