package kcl

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamproc/streamproc/internal/eventually"
)

// balanceConfig is a worker configuration for the balancing tests: renewals, take passes and so moves every second,
// and a failover time long enough that no lease expires on a loaded machine (an expired lease would be taken
// without a hand-off, and delivered again).
func balanceConfig(stream, table, id string, c *collector) Config {
	cfg := fastConfig(stream, table, id)
	cfg.FailoverTime, cfg.RenewInterval, cfg.TakeInterval = 6*time.Second, time.Second, time.Second
	cfg.NewProcessor = func() Processor { return &testProcessor{worker: id, c: c, lazy: true} }
	return cfg
}

// listLeases reads every lease of a table.
func listLeases(t testing.TB, table string) []Lease {
	t.Helper()
	leases, err := mustTable(t, table).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return leases
}

// logRecorder is a slog.Handler that keeps the time of each message per shard, and passes records on.
type logRecorder struct {
	next slog.Handler
	mu   *sync.Mutex
	seen map[string]time.Time // message + " " + shard id -> first time
}

func newLogRecorder(next slog.Handler) *logRecorder {
	return &logRecorder{next: next, mu: &sync.Mutex{}, seen: map[string]time.Time{}}
}

func (r *logRecorder) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	shard := ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "shard_id" {
			shard = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	if _, ok := r.seen[rec.Message+" "+shard]; !ok {
		r.seen[rec.Message+" "+shard] = rec.Time
	}
	r.mu.Unlock()
	if r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}
func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{next: r.next.WithAttrs(attrs), mu: r.mu, seen: r.seen}
}
func (r *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{next: r.next.WithGroup(name), mu: r.mu, seen: r.seen}
}

// first returns when msg was first logged for a shard, and which shard; ok is false when it was not.
func (r *logRecorder) first(msg string) (at time.Time, shard string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.seen {
		if len(k) > len(msg) && k[:len(msg)+1] == msg+" " {
			return t, k[len(msg)+1:], true
		}
	}
	return time.Time{}, "", false
}

func TestGracefulHandoff(t *testing.T) {
	tests := map[string]struct {
		hang     bool          // worker-a's processors hang in ShutdownRequested until the lease is lost
		failover time.Duration // long when the hand-off must beat it by far, short when the fallback waits on it
		noIndex  bool          // the lease table has no owner index (a Java KCL 2.x table): no discovery through it
	}{
		"the old owner checkpoints and lets go: no duplicate, no failover wait": {failover: 20 * time.Second},
		"the old owner hangs: the hand-off times out into a take, on a table without owner index": {
			hang: true, failover: 3 * time.Second, noIndex: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN worker-a reading both shards of a stream written steadily, with processors that checkpoint only
			// when asked to stop (any lease moved without a hand-off would deliver records again)
			kc := testKinesis(t)
			stream := createStream(t, kc, 2)
			table := uniqueName("app")
			if tc.noIndex {
				createTableWithoutOwnerIndex(t, table)
			}
			writer := startSteadyWriter(t, kc, stream, []int{10, 10}, 200)
			c := newCollector()
			var hang atomic.Bool
			hang.Store(tc.hang)
			cfg := func(id string) Config {
				cfg := balanceConfig(stream, table, id, c)
				cfg.FailoverTime, cfg.HandoffTimeout = tc.failover, 2*time.Second
				cfg.NewProcessor = func() Processor { return &testProcessor{worker: id, c: c, lazy: true, hangOnShutdown: &hang} }
				return cfg
			}
			a := startWorker(t, cfg("worker-a"), kc, c, nil)
			waitHolds(t, a.w, 2, 30*time.Second)
			c.waitFor(t, 40, 30*time.Second)

			// WHEN worker-b starts, and moves one of the two leases to itself
			metrics, emf := newTestMetrics(t)
			logs := newLogRecorder(testLogger().Handler())
			cfgB := cfg("worker-b")
			cfgB.Metrics, cfgB.Logger = metrics, slog.New(logs)
			b := startWorker(t, cfgB, kc, c, nil)
			shard, took := waitHandoff(t, logs, b)
			hang.Store(false) // the moved lease's processor on worker-a stays stuck until the lease is taken from it

			// THEN every record is delivered in order; with a graceful hand-off none twice, and without waiting for
			// the lease to expire (the failover time is 20 s, ten times what a hand-off needs here)
			time.Sleep(2 * time.Second) // records keep flowing through worker-b
			written := writer.finish()
			c.waitFor(t, len(written), 60*time.Second)
			c.checkComplete(t, written)
			b.stop(t)
			a.stop(t)
			if err := metrics.Flush(); err != nil {
				t.Fatal(err)
			}
			sums := emfSums(t, emf.String())
			_, dups := c.distinct()
			c.mu.Lock()
			lost := c.lostCalls["worker-a"]
			c.mu.Unlock()
			t.Logf("%s moved from worker-a to worker-b in %v (failover time %v, hand-off timeout %v); %d records, %d duplicates, %d LeaseLost on worker-a; %s %v, %s %v",
				shard, took.Round(time.Millisecond), tc.failover, cfgB.HandoffTimeout, len(written), dups, lost,
				MetricLeaseMoves, sums[MetricLeaseMoves], MetricHandoffTimeouts, sums[MetricHandoffTimeouts])
			if sums[MetricLeaseMoves] != 1 {
				t.Fatalf("%s = %v on worker-b, want 1", MetricLeaseMoves, sums[MetricLeaseMoves])
			}
			if tc.hang {
				if lost == 0 || sums[MetricHandoffTimeouts] != 1 || took < cfgB.HandoffTimeout+tc.failover {
					t.Fatalf("timed-out hand-off: %d LeaseLost calls, %v timeouts, took %v; want the old owner to lose the lease after the timeout (%v)",
						lost, sums[MetricHandoffTimeouts], took, cfgB.HandoffTimeout+tc.failover)
				}
			} else if dups != 0 || lost != 0 || took >= tc.failover || sums[MetricHandoffTimeouts] != 0 {
				t.Fatalf("graceful hand-off: %d duplicates, %d LeaseLost calls, took %v, %v timeouts; want 0, 0, under the failover time %v, 0",
					dups, lost, took, sums[MetricHandoffTimeouts], tc.failover)
			}
		})
	}
}

// waitHandoff waits until worker b started a hand-off and holds the lease it moved; it returns the lease's shard
// and how long the move took from its start.
func waitHandoff(t *testing.T, logs *logRecorder, b *testWorker) (shard string, took time.Duration) {
	t.Helper()
	var started time.Time
	eventually.Succeeds(t, 60*time.Second, func() error {
		var ok bool
		if started, shard, ok = logs.first("lease hand-off started"); !ok {
			return fmt.Errorf("worker-b started no hand-off")
		}
		return nil
	})
	eventually.Succeeds(t, 60*time.Second, func() error {
		if !slices.Contains(b.w.HeldLeases(), shard) {
			return fmt.Errorf("worker-b holds %v, not %s", b.w.HeldLeases(), shard)
		}
		return nil
	})
	return shard, time.Since(started)
}

// waitCountBalanced waits until the leases are spread with max - min <= 1 over the workers, none is being handed
// over, and every worker holds what the table says it owns.
func waitCountBalanced(t *testing.T, table string, workers []*testWorker, timeout time.Duration) map[string]int {
	t.Helper()
	var owners map[string]int
	eventually.Succeeds(t, timeout, func() error {
		leases, err := mustTable(t, table).List(context.Background())
		if err != nil {
			return err
		}
		owners = map[string]int{}
		for _, l := range leases {
			if l.HandingOver() {
				return fmt.Errorf("lease %s being handed over from %s to %s", l.Key, l.CheckpointOwner, l.Owner)
			}
			if !l.Finished() {
				owners[l.Owner]++
			}
		}
		lo, hi := 1<<30, 0
		for _, w := range workers {
			n := owners[w.id]
			lo, hi = min(lo, n), max(hi, n)
			if held := len(w.w.HeldLeases()); held != n {
				return fmt.Errorf("%s holds %d leases, the table gives it %d", w.id, held, n)
			}
		}
		if hi-lo > 1 || owners[""] != 0 {
			return fmt.Errorf("leases not balanced: %v", owners)
		}
		return nil
	})
	return owners
}

func TestWorkersStartingTogetherDeliverOnce(t *testing.T) {
	tests := map[string]struct {
		workers int
		shards  int32
		records int
	}{
		"make local: two workers, two shards, the blog's one record": {workers: 2, shards: 2, records: 1},
		"three workers, six shards":                                  {workers: 3, shards: 6, records: 3000},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN a clean run: a new stream holding records, a new lease table, processors that checkpoint only
			// when asked to stop (as the log processor between its checkpoints)
			kc := testKinesis(t)
			stream := createStream(t, kc, tc.shards)
			recs := makeRecords(tc.records, 60, 100)
			putAggregated(t, kc, stream, recs, 100)
			table := uniqueName("app")
			c := newCollector()
			// WHEN the workers start together
			var workers []*testWorker
			for i := range tc.workers {
				id := fmt.Sprintf("worker-%d", i)
				workers = append(workers, startWorker(t, balanceConfig(stream, table, id, c), kc, c, nil))
			}
			// THEN once the records are delivered and the leases balanced, every record was delivered exactly once
			c.waitFor(t, len(recs), 90*time.Second)
			owners := waitCountBalanced(t, table, workers, 90*time.Second)
			c.checkComplete(t, recs)
			_, dups := c.distinct()
			for _, w := range workers {
				w.stop(t)
			}
			_, dupsAfterStop := c.distinct()
			t.Logf("%d workers started together on %d shards: leases %v; %d records, %d duplicates (%d after a graceful stop)",
				tc.workers, tc.shards, owners, len(recs), dups, dupsAfterStop)
			if dups != 0 || dupsAfterStop != 0 {
				c.mu.Lock()
				defer c.mu.Unlock()
				t.Fatalf("%d records delivered twice (%d after the stop), want 0; first repeats: %v", dups, dupsAfterStop,
					c.repeats[:min(len(c.repeats), 5)])
			}
		})
	}
}

// workerLoads sums the recorded throughput of the active leases by owner (every worker listed, with 0 when idle);
// hottest is the throughput of the hottest lease.
func workerLoads(leases []Lease, workers []*testWorker) (loads map[string]float64, hottest float64) {
	loads = map[string]float64{}
	for _, w := range workers {
		loads[w.id] = 0
	}
	for _, l := range activeLeases(leases) {
		loads[l.Owner] += l.ThroughputKBps
		hottest = max(hottest, l.ThroughputKBps)
	}
	return loads, hottest
}

func TestBalancingWithAHotShard(t *testing.T) {
	// The issue asks for max load / mean <= 1.25, but with one shard of 10 parts in 15 the worker holding it carries
	// at least twice the mean, whatever the assignment. The balance is measured against the lowest maximum any
	// assignment reaches: the mean, or the hottest lease when it alone is above the mean.
	for _, balancing := range []Balancing{BalancingLoad, BalancingCount} {
		t.Run(string(balancing), func(t *testing.T) {
			// GIVEN 6 shards written steadily, one with 10 times the records of each other
			kc := testKinesis(t)
			stream := createStream(t, kc, 6)
			writer := startSteadyWriter(t, kc, stream, []int{5, 5, 50, 5, 5, 5}, 1000)
			table := uniqueName("app")
			c := newCollector()
			// WHEN three workers balancing by load (or by count) start together
			var workers []*testWorker
			for _, id := range []string{"worker-a", "worker-b", "worker-c"} {
				cfg := balanceConfig(stream, table, id, c)
				cfg.Balancing = balancing
				workers = append(workers, startWorker(t, cfg, kc, c, nil))
			}
			// THEN the balance is reached: by load, the hot lease alone on a worker; by count, two leases each
			eventually.Succeeds(t, 120*time.Second, func() error {
				leases, err := mustTable(t, table).List(context.Background())
				if err != nil {
					return err
				}
				return balanceReached(leases, workers, balancing)
			})
			// THEN while it holds, no lease moves more than twice
			moves := map[string]int{}
			last := map[string]string{}
			for _, l := range listLeases(t, table) {
				last[l.Key] = l.Owner
			}
			var ratios [][2]float64
			sample := time.NewTicker(250 * time.Millisecond)
			defer sample.Stop()
			for holding := time.After(10 * time.Second); holding != nil; {
				select {
				case <-holding:
					holding = nil
				case <-sample.C:
					leases := listLeases(t, table)
					for _, l := range leases {
						if l.Owner != last[l.Key] {
							moves[l.Key]++
							last[l.Key] = l.Owner
						}
					}
					loads, hottest := workerLoads(leases, workers)
					overMean, overBest := loadRatios(loads, hottest)
					ratios = append(ratios, [2]float64{overMean, overBest})
				}
			}
			leases := listLeases(t, table)
			loads, hottest := workerLoads(leases, workers)
			overMean, overBest := loadRatios(loads, hottest)
			// THEN every record is delivered
			written := writer.finish()
			c.waitFor(t, len(written), 90*time.Second)
			c.checkComplete(t, written)
			_, dups := c.distinct()
			maxMoves := slices.Max(append(slices.Collect(maps.Values(moves)), 0))
			worstOverBest := slices.MaxFunc(ratios, func(x, y [2]float64) int { return cmp.Compare(x[1], y[1]) })[1]
			t.Logf("balancing by %s: loads (KB/s) %v; max/mean %.2f, max/best possible %.2f (worst while holding %.2f); %d lease moves after the balance held (at most %d per lease); %d records, %d duplicates",
				balancing, roundLoads(loads), overMean, overBest, worstOverBest, sumMoves(moves), maxMoves, len(written), dups)
			if maxMoves > 2 {
				t.Fatalf("a lease moved %d times after the balance held: %v", maxMoves, moves)
			}
			if balancing == BalancingLoad && worstOverBest > 1.25 {
				t.Fatalf("balancing by load: the busiest worker carried %.2f of the best possible, want <= 1.25", worstOverBest)
			}
		})
	}
}

// balanceReached reports, as an error, what is missing for the balance the workers aim at.
func balanceReached(leases []Lease, workers []*testWorker, balancing Balancing) error {
	counts, hotOwner, hottest := map[string]int{}, "", 0.0
	for _, l := range activeLeases(leases) {
		if l.HandingOver() || l.Owner == "" || !l.HasThroughput {
			return fmt.Errorf("lease %s: owner %q, hand-off from %q, throughput known %v", l.Key, l.Owner, l.CheckpointOwner, l.HasThroughput)
		}
		counts[l.Owner]++
		if l.ThroughputKBps > hottest {
			hotOwner, hottest = l.Owner, l.ThroughputKBps
		}
	}
	for _, w := range workers {
		switch {
		case balancing == BalancingCount && counts[w.id] != 2:
			return fmt.Errorf("lease counts %v, want 2 each", counts)
		case balancing == BalancingLoad && (counts[w.id] == 0 || w.id == hotOwner && counts[w.id] != 1):
			return fmt.Errorf("lease counts %v, want the hot lease of %s alone", counts, hotOwner)
		}
	}
	return nil
}

func roundLoads(loads map[string]float64) map[string]string {
	out := map[string]string{}
	for w, l := range loads {
		out[w] = fmt.Sprintf("%.0f", l)
	}
	return out
}

func sumMoves(moves map[string]int) int {
	n := 0
	for _, m := range moves {
		n += m
	}
	return n
}
