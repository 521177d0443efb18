package kcl

import (
	"testing"
	"time"
)

func TestWorkerReadsEveryRecord(t *testing.T) {
	tests := map[string]struct {
		mode    ReadMode
		workers int
		shards  int32
		records int
	}{
		"polling, one worker":  {mode: ReadModePolling, workers: 1, shards: 2, records: 2000},
		"fan-out, two workers": {mode: ReadModeFanOut, workers: 2, shards: 4, records: 2000},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := testKinesis(t)
			stream := createStream(t, kc, tc.shards)
			var arn string
			if tc.mode == ReadModeFanOut {
				arn = registerConsumer(t, kc, stream)
			}
			table := uniqueName("app")
			recs := makeRecords(tc.records, 50, 100)
			putAggregated(t, kc, stream, recs, 200)
			c := newCollector()
			for i := range tc.workers {
				cfg := fastConfig(stream, table, "worker-"+string(rune('a'+i)))
				cfg.ReadMode, cfg.ConsumerARN = tc.mode, arn
				startWorker(t, cfg, kc, c, nil)
			}
			c.waitFor(t, len(recs), 60*time.Second)
			c.checkComplete(t, recs)
			_, dups := c.distinct()
			t.Logf("%d records, %d duplicates", len(recs), dups)
		})
	}
}
