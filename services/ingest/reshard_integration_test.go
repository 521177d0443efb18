package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/ingest/ingesttest"
	"github.com/streamproc/streamproc/services/kpl"
)

func TestReshardDuringLoadLosesNothing(t *testing.T) {
	// GIVEN a 2-shard stream and clients that send single records without
	// pause
	p := newPipeline(t, 2, kpl.Config{MaxBufferedTime: 20 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	load := startSingleRecordLoad(ctx, t, p.url, 32)
	defer load.stop()
	waitForRecords(t, "sent", load.sentCount, 1000)

	// WHEN the stream goes from 2 to 4 shards, and the clients keep sending
	// after the 4 shards are open
	if _, err := p.reader.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(p.stream), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling,
	}); err != nil {
		t.Fatal(err)
	}
	open := waitForOpenShards(ctx, t, p, 4)
	load.markResharded()
	waitForRecords(t, "sent after the reshard", load.afterCount, 3000)
	load.stop()
	if ctx.Err() != nil {
		t.Fatalf("timed out: %d records sent, %d after the reshard", load.sentCount(), load.afterCount())
	}

	// THEN every acknowledged record is in the stream where it was said to
	// be, none is only out of its shard's range, and the later ones follow
	// the new map
	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	acked := checkReshardOutcome(t, s, load, open)
	t.Logf("%d records (%d after the 4 shards opened), %d acknowledged and found; stream: %d shards, %d user records kept, %d outside their shard's range (re-put elsewhere); per shard %v",
		len(load.sent), len(load.after), acked, len(s.Shards), len(s.Records), len(s.OutOfRange), s.PerShard)
}

// singleRecordLoad is clients sending single records without pause, each
// remembered with its answer; those sent once markResharded was called are
// also in after.
type singleRecordLoad struct {
	mu        sync.Mutex
	sent      []*sentRecord
	after     []*sentRecord // sent after markResharded
	resharded atomic.Bool
	stopped   atomic.Bool
	n         atomic.Int64
	wg        sync.WaitGroup
	client    *http.Client
}

// startSingleRecordLoad starts workers clients posting to url until stop
// or the end of ctx.
func startSingleRecordLoad(ctx context.Context, t *testing.T, url string, workers int) *singleRecordLoad {
	l := &singleRecordLoad{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	for range workers {
		l.wg.Go(func() {
			for !l.stopped.Load() && ctx.Err() == nil {
				if !l.sendOne(ctx, t, url) {
					return
				}
			}
		})
	}
	return l
}

// sendOne posts the next record and remembers it with its answer. It
// reports false, the client's end, when the request or its answer failed.
func (l *singleRecordLoad) sendOne(ctx context.Context, t *testing.T, url string) bool {
	r, obj := makeRecord(t, "reshard", int(l.n.Add(1)))
	body, _ := json.Marshal(obj)
	wasResharded := l.resharded.Load()
	status, _, answer, err := post(ctx, l.client, url, "application/json", body)
	if err != nil {
		if ctx.Err() == nil {
			t.Error(err)
		}
		return false
	}
	var a putAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		t.Errorf("answer %q: %v", answer, err)
		return false
	}
	r.status, r.loc, r.err = status, a.location(), a.Error
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, r)
	if wasResharded {
		l.after = append(l.after, r)
	}
	return true
}

// markResharded makes the records sent from now on count in after.
func (l *singleRecordLoad) markResharded() { l.resharded.Store(true) }

// stop stops the clients and waits for them; it may be called again.
func (l *singleRecordLoad) stop() {
	l.stopped.Store(true)
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

func (l *singleRecordLoad) sentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

func (l *singleRecordLoad) afterCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.after)
}

// waitForRecords waits until count returns at least n records, which what
// says.
func waitForRecords(t *testing.T, what string, count func() int, n int) {
	t.Helper()
	eventually.Succeeds(t, time.Minute, func() error {
		if got := count(); got < n {
			return fmt.Errorf("%d records %s, want %d", got, what, n)
		}
		return nil
	})
}

// waitForOpenShards waits until the stream has n open shards and returns
// their IDs.
func waitForOpenShards(ctx context.Context, t *testing.T, p *pipeline, n int) []string {
	t.Helper()
	var open []string
	eventually.Succeeds(t, time.Minute, func() error {
		out, err := p.reader.ListShards(ctx, &kinesis.ListShardsInput{
			StreamName: aws.String(p.stream), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest},
		})
		if err != nil {
			return fmt.Errorf("list shards: %w", err)
		}
		open = open[:0]
		for _, s := range out.Shards {
			open = append(open, aws.ToString(s.ShardId))
		}
		if len(open) != n {
			return fmt.Errorf("%d open shards %v, want %d", len(open), open, n)
		}
		return nil
	})
	return open
}

// checkReshardOutcome checks the stream after the load stopped: every record
// was answered 200 and every acknowledged one is where it was said to be, in
// its shard's range (a KCL consumer keeps it); a record outside its shard's
// range is also in range elsewhere; and the last half of the records sent
// after the 4 shards opened landed in open shards. It returns the count of
// acknowledged records.
func checkReshardOutcome(t *testing.T, s *ingesttest.Stream, load *singleRecordLoad, open []string) (acked int) {
	t.Helper()
	for _, r := range load.sent {
		if r.status != http.StatusOK {
			t.Errorf("record %q answered %d (%s)", r.data, r.status, r.err)
		}
	}
	acked, _ = checkAcknowledged(t, s, load.sent)
	// Records put into a shard that had meanwhile split are outside their
	// shard's range there; each must also be in range somewhere else.
	inRange := s.Data()
	for _, r := range s.OutOfRange {
		if !inRange[string(r.Data)] {
			t.Errorf("record %q is only in %s, outside that shard's range: a KCL consumer drops it", r.Data, r.ShardID)
		}
	}
	// Later aggregates follow the new map: once the engine has seen the
	// new shards, records land on them. The first of the post-reshard
	// records may still race the engine's refresh; the last half may not.
	isOpen := map[string]bool{}
	for _, id := range open {
		isOpen[id] = true
	}
	for _, r := range load.after[len(load.after)/2:] {
		if !isOpen[r.loc.ShardID] {
			t.Errorf("record %q acknowledged in %s well after the reshard; open shards are %v", r.data, r.loc.ShardID, open)
		}
	}
	return acked
}
