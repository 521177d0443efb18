package multilang_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/multilang"
)

// TestSamplesProcessEveryRecord runs the record processors users start from (samples/) under the host: every record
// is written to stderr once, which the host logs tagged with the shard, and the leases end checkpointed.
func TestSamplesProcessEveryRecord(t *testing.T) {
	tests := map[string][]string{
		"python": {"python3", filepath.Join("samples", "record_processor.py")},
		"node":   {"node", filepath.Join("samples", "record_processor.js")},
	}
	for name, command := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, 2)
			h.put(300)
			abs, err := filepath.Abs(command[1])
			if err != nil {
				t.Fatal(err)
			}
			w := h.startWorker("worker-1", multilang.Config{Command: []string{command[0], abs}})
			eventually.Succeeds(t, time.Minute, func() error {
				if seen := h.sampleOutput(); len(seen) < len(h.sent) {
					return fmt.Errorf("%d of %d records written to stderr", len(seen), len(h.sent))
				}
				return nil
			})
			w.stop(t)
			seen := h.sampleOutput()
			for _, d := range h.sent {
				if seen[d] != 1 {
					t.Errorf("record %s written %d times, want once", d, seen[d])
				}
			}
			h.checkReleasedAndCheckpointed()
		})
	}
}

// sampleOutput counts, by data, the records the samples wrote to stderr (logged by the host, one line each).
func (h *harness) sampleOutput() map[string]int {
	seen := map[string]int{}
	for line := range strings.SplitSeq(h.logs.String(), "\n") {
		var entry struct {
			Msg   string `json:"msg"`
			Shard string `json:"shard_id"`
			Line  string `json:"line"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "record processor stderr" {
			continue
		}
		var rec struct {
			Shard string `json:"shard_id"`
			Data  string `json:"data"`
		}
		if json.Unmarshal([]byte(entry.Line), &rec) == nil && rec.Shard == entry.Shard {
			seen[rec.Data]++
		}
	}
	return seen
}

// checkReleasedAndCheckpointed checks the leases are released and checkpointed at a record (sequence numbers start
// with 4), not at TRIM_HORIZON.
func (h *harness) checkReleasedAndCheckpointed() {
	h.t.Helper()
	for _, l := range h.leases() {
		if l.Owner != "" || !strings.HasPrefix(l.Checkpoint, "4") {
			h.t.Errorf("lease %s: owner %q, checkpoint %s; want released at a record", l.Key, l.Owner, l.Checkpoint)
		}
	}
}
