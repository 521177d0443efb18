package kcl

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamproc/streamproc/internal/eventually"
)

// shard returns a listed shard with the given parents ("" for none).
func shard(id, parent, adjacent string) ktypes.Shard {
	s := ktypes.Shard{ShardId: aws.String(id)}
	if parent != "" {
		s.ParentShardId = aws.String(parent)
	}
	if adjacent != "" {
		s.AdjacentParentShardId = aws.String(adjacent)
	}
	return s
}

func TestPlanCleanup(t *testing.T) {
	const (
		p  = "shardId-000000000000"
		c1 = "shardId-000000000001"
		c2 = "shardId-000000000002"
		g  = "shardId-000000000003" // child of c1
		o  = "shardId-000000000004" // an unrelated open shard
	)
	end := func(key string, children ...string) Lease {
		return Lease{Key: key, Checkpoint: CheckpointShardEnd, ChildShardIDs: children, Counter: 7}
	}
	at := func(key, checkpoint string, parents ...string) Lease {
		return Lease{Key: key, Checkpoint: checkpoint, ParentShardIDs: parents, Counter: 3}
	}
	split := []ktypes.Shard{shard(p, "", ""), shard(c1, p, ""), shard(c2, p, ""), shard(o, "", "")}
	tests := map[string]struct {
		leases []Lease
		shards []ktypes.Shard
		want   map[string]string // deleted lease -> reason
	}{
		"parent ended, both children started: parent deleted": {
			leases: []Lease{end(p, c1, c2), at(c1, "49590", p), at(c2, CheckpointShardEnd, p), at(o, "1")},
			shards: split,
			want:   map[string]string{p: cleanupShardCompleted},
		},
		"one child not started: parent kept": {
			leases: []Lease{end(p, c1, c2), at(c1, "49590", p), at(c2, CheckpointTrimHorizon, p)},
			shards: split,
		},
		"child at LATEST or AT_TIMESTAMP has not started: parent kept": {
			leases: []Lease{end(p, c1, c2), at(c1, CheckpointLatest, p), at(c2, CheckpointAtTimestamp, p)},
			shards: split,
		},
		"a child's lease missing: parent kept": {
			leases: []Lease{end(p, c1, c2), at(c1, "49590", p)},
			shards: split,
		},
		"children known only from ListShards": {
			leases: []Lease{end(p), at(c1, "1", p), at(c2, "2", p)},
			shards: split,
			want:   map[string]string{p: cleanupShardCompleted},
		},
		"ended without children anywhere: kept": {
			leases: []Lease{end(o)},
			shards: split,
		},
		"open shards are never deleted, whatever their checkpoint": {
			leases: []Lease{at(o, CheckpointTrimHorizon), at(c1, "5", p), at(c2, CheckpointLatest, p)},
			shards: split,
		},
		"parent not finished though children exist: kept while listed": {
			leases: []Lease{at(p, "12"), at(c1, "49590", p), at(c2, "3", p)},
			shards: split,
		},
		"chain deleted oldest first in one pass": {
			leases: []Lease{end(p, c1, c2), end(c1, g), at(c2, "9", p), at(g, "10", c1)},
			shards: append(slices.Clone(split), shard(g, c1, "")),
			want:   map[string]string{p: cleanupShardCompleted, c1: cleanupShardCompleted},
		},
		"finished child kept while its parent's lease remains": {
			leases: []Lease{end(p, c1, c2), end(c1, g), at(c2, CheckpointTrimHorizon, p), at(g, "10", c1)},
			shards: append(slices.Clone(split), shard(g, c1, "")),
		},
		"aged out and finished: deleted": {
			leases: []Lease{end(p, c1, c2), at(c1, CheckpointTrimHorizon, p), at(c2, CheckpointTrimHorizon, p)},
			shards: split[1:],
			want:   map[string]string{p: cleanupShardExpired},
		},
		"aged out, never finished, children leased: deleted": {
			leases: []Lease{at(p, "12"), at(c1, CheckpointTrimHorizon, p), at(c2, CheckpointTrimHorizon, p)},
			shards: split[1:],
			want:   map[string]string{p: cleanupShardExpired},
		},
		"aged out, never finished, one child lease missing: kept": {
			leases: []Lease{at(p, "12"), at(c1, CheckpointTrimHorizon, p)},
			shards: split[1:],
		},
		"aged out, never finished, no children known: kept": {
			leases: []Lease{at(p, "12"), at(o, "1")},
			shards: split[1:],
		},
		"empty shard list: nothing deleted": {
			leases: []Lease{end(p, c1, c2), at(c1, "1", p), at(c2, "2", p)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := map[string]string{}
			for _, d := range planCleanup(tc.leases, tc.shards) {
				got[d.lease.Key] = d.reason
			}
			want := tc.want
			if want == nil {
				want = map[string]string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("deleted %v, want %v", got, want)
			}
		})
	}
}

func TestAncestorsOfLeased(t *testing.T) {
	shards := []ktypes.Shard{
		shard("s0", "", ""), shard("s1", "", ""), shard("s2", "s0", "s1"), shard("s3", "s2", ""), shard("s4", "", ""),
	}
	tests := map[string]struct {
		leases []Lease
		want   []string
	}{
		"grandchild leased: every ancestor": {leases: []Lease{{Key: "s3", ParentShardIDs: []string{"s2"}}}, want: []string{"s0", "s1", "s2"}},
		"only roots leased: none":           {leases: []Lease{{Key: "s0"}, {Key: "s4"}}},
		"parents from the lease when the stream no longer lists them": {
			leases: []Lease{{Key: "s9", ParentShardIDs: []string{"s8"}}}, want: []string{"s8"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for id := range ancestorsOfLeased(shards, tc.leases) {
				got = append(got, id)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ancestors %v, want %v", got, tc.want)
			}
		})
	}
}

// waitLease polls the lease table until cond holds for key's lease (found says whether it exists).
func waitLease(t *testing.T, lt *LeaseTable, key string, timeout time.Duration, what string, cond func(l Lease, found bool) bool) {
	t.Helper()
	eventually.Succeeds(t, timeout, func() error {
		l, found, err := lt.Get(context.Background(), key)
		if err != nil {
			return err
		}
		if !cond(l, found) {
			return fmt.Errorf("lease %s: not %s (found %v, %+v)", key, what, found, l)
		}
		return nil
	})
}

// waitCleanupPasses waits until the worker finished n more clean-up passes.
func waitCleanupPasses(t *testing.T, w *Worker, n int64) {
	t.Helper()
	target := w.cleanupPasses.Load() + n
	eventually.Succeeds(t, 20*time.Second, func() error {
		if done := w.cleanupPasses.Load(); done < target {
			return fmt.Errorf("%d clean-up passes, want %d", done, target)
		}
		return nil
	})
}

func TestLeaseCleanupAfterSplit(t *testing.T) {
	// GIVEN a worker with frequent clean-up passes on a two-shard stream whose first shard is split once read
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	table := uniqueName("app")
	lt := mustTable(t, table)
	metrics, emf := newTestMetrics(t)
	c := newCollector()
	cfg := fastConfig(stream, table, "worker-a")
	cfg.LeaseCleanupInterval = 100 * time.Millisecond
	cfg.Metrics = metrics
	tw := startWorker(t, cfg, kc, c, nil)
	all := makeRecords(2400, 40, 40)
	putAggregated(t, kc, stream, all[:400], 20)
	c.waitFor(t, 400, 60*time.Second)
	s := splitFirstShardOf(t, kc, stream, all[400:])

	// WHEN only the first child gets records
	putAggregated(t, kc, stream, s.toChild1, 20)
	c.waitFor(t, 400+len(s.toChild1), 60*time.Second)
	waitLease(t, lt, s.parent, 30*time.Second, "at SHARD_END", func(l Lease, found bool) bool { return found && l.Finished() })
	waitLease(t, lt, s.child1, 30*time.Second, "started", func(l Lease, found bool) bool { return found && started(l) })
	// THEN the parent's lease stays while its second child has not started
	waitCleanupPasses(t, tw.w, 5)
	checkParentKept(t, lt, s)

	// WHEN the second child processes records too
	putAggregated(t, kc, stream, s.toChild2, 20)
	c.waitFor(t, len(all), 60*time.Second)
	c.checkComplete(t, all)
	// THEN the parent's lease goes, no other does, and a shard sync does not bring it back (kinesis-local lists the
	// parent until it ages out)
	waitLease(t, lt, s.parent, 20*time.Second, "deleted", func(_ Lease, found bool) bool { return !found })
	waitCleanupPasses(t, tw.w, 3)
	if err := tw.w.syncShards(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkLeaseKeys(t, lt, s.child1, s.child2, s.other)
	tw.stop(t)
	if err := metrics.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := emfSums(t, emf.String())[MetricLeasesCleanedUp]; got != 1 {
		t.Fatalf("EMF %s = %v, want 1", MetricLeasesCleanedUp, got)
	}
}

// splitShards names the shards of a two-shard stream after its first shard was split, and the records for them:
// toChild1 for the first child and the other shard, toChild2 for the second child.
type splitShards struct {
	parent, child1, child2, other string
	toChild1, toChild2            []testRecord
}

// splitFirstShardOf splits the first shard of a two-shard stream and routes recs to the shards that follow.
func splitFirstShardOf(t *testing.T, kc *kinesis.Client, stream string, recs []testRecord) splitShards {
	t.Helper()
	before := openShards(t, kc, stream)
	s := splitShards{parent: aws.ToString(before[0].ShardId), other: aws.ToString(before[1].ShardId)}
	splitFirstShard(t, kc, stream)
	after := openShards(t, kc, stream) // hash key order: the two children, then the other shard
	s.child1, s.child2 = aws.ToString(after[0].ShardId), aws.ToString(after[1].ShardId)
	if aws.ToString(after[2].ShardId) != s.other {
		t.Fatalf("open shards after the split %v: want the children of %s, then %s", after, s.parent, s.other)
	}
	for _, r := range recs {
		if shardIndexFor(after, r.key) == 1 {
			s.toChild2 = append(s.toChild2, r)
		} else {
			s.toChild1 = append(s.toChild1, r)
		}
	}
	if len(s.toChild2) == 0 || len(s.toChild1) == 0 {
		t.Fatalf("records split %d/%d between the children, want some in each", len(s.toChild1), len(s.toChild2))
	}
	return s
}

// checkParentKept fails unless every lease is still there, and the second child, which got no record, is still at
// TRIM_HORIZON.
func checkParentKept(t *testing.T, lt *LeaseTable, s splitShards) {
	t.Helper()
	for _, key := range []string{s.parent, s.child1, s.child2, s.other} {
		l, found, err := lt.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatalf("lease %s deleted while the second child %s had not started", key, s.child2)
		}
		if key == s.child2 && l.Checkpoint != CheckpointTrimHorizon {
			t.Fatalf("child %s checkpoint %q, want TRIM_HORIZON (no record written to it)", key, l.Checkpoint)
		}
	}
}

// checkLeaseKeys fails unless the lease table holds exactly the leases of want.
func checkLeaseKeys(t *testing.T, lt *LeaseTable, want ...string) {
	t.Helper()
	leases, err := lt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range leases {
		keys = append(keys, l.Key)
	}
	sort.Strings(keys)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(keys, want) {
		t.Fatalf("leases after the clean-up %v, want %v (only the parent's removed)", keys, want)
	}
}

// A lease whose shard is no longer in the stream and was never finished blocked its child for ever; the clean-up
// pass deletes it once the child's lease exists, and the child is then read.
func TestLeaseCleanupOfShardGoneFromStream(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 1)
	table := uniqueName("app")
	lt := mustTable(t, table)
	if err := lt.CreateIfMissing(context.Background()); err != nil {
		t.Fatal(err)
	}
	open := openShards(t, kc, stream)
	child := aws.ToString(open[0].ShardId)
	const gone = "shardId-000000000099" // never listed: aged out past retention, stopped mid-shard
	for _, l := range []Lease{
		{Key: gone, Checkpoint: "49590338271490256608559692538361571095921575989136588898"},
		{Key: child, Checkpoint: CheckpointTrimHorizon, ParentShardIDs: []string{gone}},
	} {
		if created, err := lt.createIfNotExists(context.Background(), l); err != nil || !created {
			t.Fatalf("create lease %s: created %v, %v", l.Key, created, err)
		}
	}
	recs := makeRecords(200, 10, 40)
	putAggregated(t, kc, stream, recs, 20)
	c := newCollector()
	cfg := fastConfig(stream, table, "worker-a")
	cfg.LeaseCleanupInterval = 100 * time.Millisecond
	startWorker(t, cfg, kc, c, nil)
	c.waitFor(t, len(recs), 30*time.Second)
	c.checkComplete(t, recs)
	if _, found, err := lt.Get(context.Background(), gone); err != nil || found {
		t.Fatalf("lease of the shard gone from the stream: found %v, %v; want deleted", found, err)
	}
}
