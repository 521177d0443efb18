package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/ingest/ingesttest"
	"github.com/streamproc/streamproc/services/kpl"
)

func TestReshardDuringLoadLosesNothing(t *testing.T) {
	p := newPipeline(t, 2, kpl.ProducerConfig{MaxBufferedTime: 20 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// Clients send single records without pause while the stream goes from
	// 2 to 4 shards.
	const workers = 32
	var (
		mu        sync.Mutex
		sent      []*sentRecord
		resharded atomic.Bool   // set once the 4 shards are open
		after     []*sentRecord // sent after that
		stop      atomic.Bool
		n         atomic.Int64
		wg        sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	for range workers {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				r, obj := makeRecord(t, "reshard", int(n.Add(1)))
				body, _ := json.Marshal(obj)
				wasResharded := resharded.Load()
				status, _, answer, err := post(ctx, client, p.url, "application/json", body)
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				var a putAnswer
				if err := json.Unmarshal(answer, &a); err != nil {
					t.Errorf("answer %q: %v", answer, err)
					return
				}
				r.status, r.loc, r.err = status, a.location(), a.Error
				mu.Lock()
				sent = append(sent, r)
				if wasResharded {
					after = append(after, r)
				}
				mu.Unlock()
			}
		})
	}
	waitFor := func(cond func() bool) {
		for !cond() && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }
	countAfter := func() int { mu.Lock(); defer mu.Unlock(); return len(after) }

	waitFor(func() bool { return count() >= 1000 })
	if _, err := p.reader.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(p.stream), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling,
	}); err != nil {
		t.Fatal(err)
	}
	var open []string
	waitFor(func() bool {
		out, err := p.reader.ListShards(ctx, &kinesis.ListShardsInput{
			StreamName: aws.String(p.stream), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest},
		})
		if err != nil {
			t.Fatal(err)
		}
		open = open[:0]
		for _, s := range out.Shards {
			open = append(open, aws.ToString(s.ShardId))
		}
		return len(open) == 4
	})
	resharded.Store(true)
	waitFor(func() bool { return countAfter() >= 3000 })
	stop.Store(true)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("timed out: %d records sent, %d after the reshard", count(), countAfter())
	}

	s, err := ingesttest.ReadStream(ctx, p.reader, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sent {
		if r.status != http.StatusOK {
			t.Errorf("record %q answered %d (%s)", r.data, r.status, r.err)
		}
	}
	// Every acknowledged record is where it was said to be, in its shard's
	// range: a KCL consumer keeps it.
	acked, _ := checkAcknowledged(t, s, sent)
	// Records put into a shard that had meanwhile split are outside their
	// shard's range there; each must also be in range somewhere else.
	inRange := map[string]bool{}
	for _, r := range s.Records {
		inRange[string(r.Data)] = true
	}
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
	late := after[len(after)/2:]
	for _, r := range late {
		if !isOpen[r.loc.ShardID] {
			t.Errorf("record %q acknowledged in %s well after the reshard; open shards are %v", r.data, r.loc.ShardID, open)
		}
	}
	t.Logf("%d records (%d after the 4 shards opened), %d acknowledged and found; stream: %d shards, %d user records kept, %d outside their shard's range (re-put elsewhere); per shard %v",
		len(sent), len(after), acked, len(s.Shards), len(s.Records), len(s.OutOfRange), s.PerShard)
}
