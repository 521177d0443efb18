package kcl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/telemetry"
)

// Worker shares the shards of a stream with the other workers of the same lease table, and runs a Processor on
// each shard it holds.
type Worker struct {
	cfg     Config
	table   *LeaseTable
	kinesis KinesisAPI
	log     *slog.Logger
	metrics metricsSink

	mu       sync.Mutex
	held     map[string]*heldLease
	observed map[string]observedCounter
	cooldown map[string]time.Time
	stopping bool
	// takeRandom makes the random choices of take passes; seeded per worker, so that workers choose differently.
	takeRandom *rand.Rand

	syncNow      chan struct{}
	shutdown     chan struct{}
	shutdownOnce sync.Once
	done         chan struct{}
	consumers    sync.WaitGroup
	renewals     sync.WaitGroup // renewal calls and clean-up passes in flight
	// cleaning is set while a clean-up pass runs, so that a slow one is not stacked with the next.
	cleaning atomic.Bool
	// cleanupPasses counts finished clean-up passes (tests wait on it).
	cleanupPasses atomic.Int64
}

// heldLease is a lease this worker holds, and the consumer reading its shard.
type heldLease struct {
	// key is the lease key (shard id); it never changes.
	key string
	// mu serializes the writes of this lease (renewals, checkpoints, release), so its counter stays exact.
	mu       sync.Mutex
	lease    Lease
	released bool // this worker gave it up or finished it
	// lost is set when another worker took the lease, or it could not be renewed in time. It is atomic because
	// expiry sets it while a hung write may hold mu.
	lost atomic.Bool
	// expiry fires FailoverTime after the start of the last successful write of the lease (take, renewal,
	// checkpoint) and then marks it lost, whether or not a call in flight ever returns: by then other workers may
	// take it.
	expiry *time.Timer
	// renewing is set while a renewal is in flight, so that a slow one is not stacked with the next.
	renewing atomic.Bool

	cancel      context.CancelFunc // stops the consumer at once
	stopReading chan struct{}      // closed for a graceful shutdown
}

// written records a successful write of h that started at start: the lease is safe for FailoverTime from then.
func (w *Worker) written(h *heldLease, start time.Time) {
	h.expiry.Reset(w.cfg.FailoverTime - time.Since(start))
}

// observedCounter is a lease counter and when this worker saw it change: a lease whose counter has not moved for
// FailoverTime has expired (its owner stopped renewing).
type observedCounter struct {
	counter   int64
	changedAt time.Time
}

// New returns a Worker. kc and ddb are usually a *kinesis.Client and a *dynamodb.Client.
func New(cfg Config, kc KinesisAPI, ddb DynamoDBAPI) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if kc == nil || ddb == nil {
		return nil, errors.New("kcl: nil Kinesis or DynamoDB client")
	}
	table, err := NewLeaseTable(ddb, cfg.LeaseTableName)
	if err != nil {
		return nil, fmt.Errorf("kcl: %w", err)
	}
	return &Worker{
		cfg:        cfg,
		table:      table,
		kinesis:    kc,
		log:        cfg.Logger.With(telemetry.LogKeyStream, cfg.StreamName, telemetry.LogKeyWorkerID, cfg.WorkerID),
		metrics:    metricsSink{cfg.Metrics},
		held:       make(map[string]*heldLease),
		observed:   make(map[string]observedCounter),
		cooldown:   make(map[string]time.Time),
		takeRandom: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		syncNow:    make(chan struct{}, 1),
		shutdown:   make(chan struct{}),
		done:       make(chan struct{}),
	}, nil
}

// Run takes and renews leases and reads the held shards until ctx is cancelled, then shuts down gracefully: reads
// stop, each processor finishes the batch in hand and checkpoints in ShutdownRequested, and the leases are
// released so that other workers take them at once. It returns nil once that is done. When the shutdown takes
// longer than Config.ShutdownTimeout, the worker stops at once, like a crash (leases not yet released expire after
// FailoverTime), and Run says so in its error. Shutdown starts the same graceful stop without cancelling ctx.
func (w *Worker) Run(ctx context.Context) error {
	runCtx, stopAtOnce := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAtOnce()
	done := make(chan error, 1)
	go func() { done <- w.run(runCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	w.log.Info("shutting down: finishing the batches in hand, checkpointing, releasing the leases")
	w.shutdownOnce.Do(func() { close(w.shutdown) })
	deadline := time.NewTimer(w.cfg.ShutdownTimeout)
	defer deadline.Stop()
	select {
	case err := <-done:
		return err
	case <-deadline.C:
		w.log.Warn("graceful shutdown did not finish in time; stopping at once", "shutdown_timeout", w.cfg.ShutdownTimeout.String())
		stopAtOnce()
		<-done
		return fmt.Errorf("kcl: graceful shutdown did not finish within %v; stopped at once", w.cfg.ShutdownTimeout)
	}
}

// run is the worker's loop. It returns nil after a graceful shutdown (w.shutdown closed); cancelling ctx stops it
// at once, like a crash: processors are not told, nothing is checkpointed, and the leases stay held until they
// expire. Tests stop a worker this way to stand for a killed one.
func (w *Worker) run(ctx context.Context) error {
	defer close(w.done)
	if w.cfg.CreateLeaseTable {
		if err := w.table.CreateIfMissing(ctx); err != nil {
			return fmt.Errorf("kcl: %w", err)
		}
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer w.renewals.Wait()
	defer cancelRun()

	// The first shard sync must succeed before anything is taken; retry with backoff (the stream may not exist yet).
	for attempt := 1; ; attempt++ {
		err := w.syncShards(runCtx)
		if err == nil {
			break
		}
		w.log.Warn("shard sync failed", telemetry.LogKeyError, err.Error(), "attempt", attempt)
		select {
		case <-w.shutdown:
			return nil
		default:
		}
		if !sleepCtx(runCtx, w.backoff(attempt)) {
			return ctx.Err()
		}
	}
	w.takeLeases(runCtx)

	renew := time.NewTicker(w.cfg.RenewInterval)
	defer renew.Stop()
	take := time.NewTicker(w.cfg.TakeInterval)
	defer take.Stop()
	sync := time.NewTicker(w.cfg.ShardSyncInterval)
	defer sync.Stop()
	cleanup := time.NewTicker(w.cfg.LeaseCleanupInterval)
	defer cleanup.Stop()

	for {
		select {
		case <-ctx.Done():
			cancelRun()
			w.consumers.Wait()
			return ctx.Err()
		case <-w.shutdown:
			return w.drain(ctx, runCtx, cancelRun, renew.C)
		case <-renew.C:
			w.renewLeases(runCtx)
		case <-take.C:
			w.takeLeases(runCtx)
		case <-sync.C:
			w.logSyncError(w.syncShards(runCtx))
		case <-cleanup.C:
			// In its own goroutine: a pass lists shards and leases and may delete several, which must not delay
			// renewals.
			if w.cleaning.CompareAndSwap(false, true) {
				w.renewals.Go(func() {
					defer w.cleaning.Store(false)
					w.cleanupLeases(runCtx)
				})
			}
		case <-w.syncNow:
			w.logSyncError(w.syncShards(runCtx))
			w.takeLeases(runCtx)
		}
	}
}

func (w *Worker) logSyncError(err error) {
	if err != nil {
		w.log.Warn("shard sync failed", telemetry.LogKeyError, err.Error())
	}
}

// drain runs the graceful shutdown: every consumer stops reading, finishes its batch, lets its processor checkpoint
// and releases its lease; leases are renewed meanwhile.
func (w *Worker) drain(ctx, runCtx context.Context, cancelRun context.CancelFunc, renew <-chan time.Time) error {
	w.mu.Lock()
	w.stopping = true
	for _, h := range w.held {
		close(h.stopReading)
	}
	w.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		w.consumers.Wait()
		close(finished)
	}()
	for {
		select {
		case <-finished:
			w.log.Info("worker shut down")
			return nil
		case <-ctx.Done():
			cancelRun()
			<-finished
			return ctx.Err()
		case <-renew:
			w.renewLeases(runCtx)
		}
	}
}

// Shutdown stops the worker gracefully, as cancelling Run's context does: consumers stop reading, finish the batch in
// hand, call ShutdownRequested (where processors checkpoint) and release their leases, so that other workers take
// them on their next pass. It waits until Run returns or ctx is done.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.shutdownOnce.Do(func() { close(w.shutdown) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kcl: shutdown: %w", ctx.Err())
	}
}

// HeldLeases returns the shard ids this worker is reading, sorted.
func (w *Worker) HeldLeases() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.held))
	for k := range w.held {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// backoff returns the pause before retry attempt+1: RetryBackoff doubling up to MaxRetryBackoff, with jitter.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.RetryBackoff
	for i := 1; i < attempt && d < w.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxRetryBackoff)
	return d/2 + rand.N(d/2+1)
}

// renewLeases starts the renewal of every held lease, each in its own goroutine with a deadline of RenewInterval, so
// that a hung call delays neither the other leases nor the run loop. A lease whose renewal fails its condition is
// lost; one not renewed for FailoverTime is lost by its expiry timer. Either way its consumer stops at once, without
// a checkpoint.
func (w *Worker) renewLeases(ctx context.Context) {
	w.mu.Lock()
	hs := make([]*heldLease, 0, len(w.held))
	for _, h := range w.held {
		hs = append(hs, h)
	}
	w.mu.Unlock()
	for _, h := range hs {
		if !h.renewing.CompareAndSwap(false, true) {
			continue // the previous renewal is still waiting for the lease's lock or its call
		}
		w.renewals.Go(func() {
			defer h.renewing.Store(false)
			w.renew(ctx, h)
		})
	}
	w.metrics.observe(MetricCurrentLeases, telemetry.UnitCount, float64(len(hs)))
}

func (w *Worker) renew(ctx context.Context, h *heldLease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost.Load() || h.released {
		return
	}
	l := h.lease
	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	err := w.table.renew(callCtx, &l)
	switch {
	case err == nil:
		h.lease = l
		w.written(h, start)
	case errors.Is(err, ErrLeaseLost):
		w.lose(h, "taken by another worker")
	case ctx.Err() != nil:
	default:
		w.log.Warn("lease renewal failed", telemetry.LogKeyShardID, h.key, telemetry.LogKeyError, err.Error())
	}
}

// lose marks a lease lost and stops its consumer at once. It does not need h.mu, which a hung write may hold.
func (w *Worker) lose(h *heldLease, why string) {
	h.expiry.Stop()
	w.expire(h, why)
}

// expire is lose without stopping the expiry timer; the timer itself calls it. It must not read h.expiry: a timer
// that fires at once (a take slower than FailoverTime) runs before takeOne has stored it.
func (w *Worker) expire(h *heldLease, why string) {
	if h.lost.Swap(true) {
		return
	}
	h.cancel()
	w.metrics.count(MetricLeasesLost, telemetry.UnitCount, 1)
	w.log.Info("lease lost", telemetry.LogKeyShardID, h.key, "reason", why)
}

// takeLeases looks at every lease and takes what this worker needs to hold about ceil(leases/workers): new,
// released and expired leases first, otherwise one lease stolen from the most loaded worker.
func (w *Worker) takeLeases(ctx context.Context) {
	listCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	leases, err := w.table.List(listCtx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("list leases failed", telemetry.LogKeyError, err.Error())
		}
		return
	}
	now := time.Now()
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return
	}
	seen := make(map[string]bool, len(leases))
	for _, l := range leases {
		seen[l.Key] = true
		if o, ok := w.observed[l.Key]; !ok || o.counter != l.Counter {
			w.observed[l.Key] = observedCounter{counter: l.Counter, changedAt: now}
		}
	}
	for k := range w.observed {
		if !seen[k] {
			delete(w.observed, k)
		}
	}
	for k, until := range w.cooldown {
		if now.After(until) {
			delete(w.cooldown, k)
		}
	}
	plan := planTakes(leases, takeView{me: w.cfg.WorkerID, held: w.held, observed: w.observed, cooldown: w.cooldown,
		now: now, failover: w.cfg.FailoverTime, random: w.takeRandom})
	w.mu.Unlock()

	for _, l := range plan {
		w.takeOne(ctx, l)
	}
}

// takeView is what a take pass decides from besides the leases just listed: this worker's own state.
type takeView struct {
	me       string                     // this worker's id
	held     map[string]*heldLease      // the leases this worker holds
	observed map[string]observedCounter // when this worker saw each lease's counter change
	cooldown map[string]time.Time       // leases this worker gave up, left to the others for a while
	now      time.Time
	failover time.Duration
	// random chooses among equal candidates, so that workers taking at the same time seldom pick the same lease.
	random *rand.Rand
}

// planTakes decides which leases to take (see takeLeases). It is pure: its random choices come from v.random, so
// tests pass a seeded one.
//
// Only active leases count (not finished, parents finished). This worker's target is its share of them,
// ceil(active / workers), the workers being itself and every other owner of a live lease. Below its target it takes
// free leases at random, or, when none is free, steals one from the most loaded worker.
func planTakes(leases []Lease, v takeView) []Lease {
	active := activeLeases(leases)
	if len(active) == 0 {
		return nil
	}
	perOwner := v.leasesPerOtherOwner(active)
	workers := len(perOwner) + 1
	target := (len(active) + workers - 1) / workers
	needed := target - v.heldAmong(active)
	if needed <= 0 {
		return nil
	}
	if free := v.freeLeases(active); len(free) > 0 {
		v.random.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		return free[:min(needed, len(free))]
	}
	return v.stealOne(active, perOwner, target, needed)
}

// activeLeases returns the leases to be read now: not finished, and every parent finished.
func activeLeases(leases []Lease) []Lease {
	byKey := make(map[string]Lease, len(leases))
	for _, l := range leases {
		byKey[l.Key] = l
	}
	var active []Lease
	for _, l := range leases {
		if !l.Finished() && parentsDone(l, byKey) {
			active = append(active, l)
		}
	}
	return active
}

// expired reports whether l's counter has not moved for the failover time: its owner stopped renewing it.
func (v takeView) expired(l Lease) bool {
	o, ok := v.observed[l.Key]
	return ok && v.now.Sub(o.changedAt) > v.failover
}

func (v takeView) coolingDown(key string) bool {
	_, cooling := v.cooldown[key]
	return cooling
}

// leasesPerOtherOwner counts the live leases of every other worker.
func (v takeView) leasesPerOtherOwner(active []Lease) map[string]int {
	counts := map[string]int{}
	for _, l := range active {
		if l.Owner != "" && l.Owner != v.me && !v.expired(l) {
			counts[l.Owner]++
		}
	}
	return counts
}

// heldAmong counts the active leases this worker holds.
func (v takeView) heldAmong(active []Lease) int {
	n := 0
	for _, l := range active {
		if v.held[l.Key] != nil {
			n++
		}
	}
	return n
}

// freeLeases returns the active leases this worker may take without stealing: without owner, expired, or its own
// but not held (a restart), and not cooling down.
func (v takeView) freeLeases(active []Lease) []Lease {
	var free []Lease
	for _, l := range active {
		if v.held[l.Key] != nil || v.coolingDown(l.Key) {
			continue
		}
		if l.Owner == "" || l.Owner == v.me || v.expired(l) {
			free = append(free, l)
		}
	}
	return free
}

// stealOne returns one lease, chosen at random, of the most loaded other worker (the first id on a tie), when that
// worker holds more than the target, or the target while this worker needs more than one.
func (v takeView) stealOne(active []Lease, perOwner map[string]int, target, needed int) []Lease {
	busiest, most := "", 0
	for owner, n := range perOwner {
		if n > most || (n == most && owner < busiest) {
			busiest, most = owner, n
		}
	}
	if busiest == "" || !(most > target || (most == target && needed > 1)) {
		return nil
	}
	var victims []Lease
	for _, l := range active {
		if l.Owner == busiest && !v.coolingDown(l.Key) {
			victims = append(victims, l)
		}
	}
	if len(victims) == 0 {
		return nil
	}
	return []Lease{victims[v.random.IntN(len(victims))]}
}

// parentsDone reports whether every parent of l with a lease is checkpointed at SHARD_END. A parent without a lease
// is past the stream's retention, or older than the application's initial position.
func parentsDone(l Lease, byKey map[string]Lease) bool {
	for _, p := range l.ParentShardIDs {
		if pl, ok := byKey[p]; ok && !pl.Finished() {
			return false
		}
	}
	return true
}

// takeOne takes a lease (conditional on the counter read) and starts its consumer.
func (w *Worker) takeOne(ctx context.Context, l Lease) {
	previous := l.Owner
	start := time.Now()
	callCtx, cancelCall := context.WithTimeout(ctx, w.cfg.RenewInterval)
	err := w.table.take(callCtx, &l, w.cfg.WorkerID)
	cancelCall()
	if err != nil {
		if !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
			w.log.Warn("take lease failed", telemetry.LogKeyShardID, l.Key, telemetry.LogKeyError, err.Error())
		}
		return
	}
	w.metrics.count(MetricLeasesTaken, telemetry.UnitCount, 1)
	shardCtx, cancel := context.WithCancel(ctx)
	h := &heldLease{key: l.Key, lease: l, cancel: cancel, stopReading: make(chan struct{})}
	h.expiry = time.AfterFunc(w.cfg.FailoverTime-time.Since(start), func() {
		w.expire(h, "not renewed within the failover time")
	})
	w.mu.Lock()
	if w.stopping { // shutdown began while taking: hand the lease back
		w.mu.Unlock()
		cancel()
		w.release(ctx, h)
		h.expiry.Stop()
		return
	}
	w.held[l.Key] = h
	w.consumers.Add(1)
	w.mu.Unlock()
	w.log.Info("lease taken", telemetry.LogKeyShardID, l.Key, "previous_owner", previous, "checkpoint", l.Checkpoint)
	go func() {
		defer w.consumers.Done()
		defer cancel()
		defer h.expiry.Stop()
		w.consume(ctx, shardCtx, h)
		w.mu.Lock()
		if w.held[l.Key] == h {
			delete(w.held, l.Key)
		}
		w.mu.Unlock()
	}()
}

// release gives a held lease up so that any worker can take it at once.
func (w *Worker) release(ctx context.Context, h *heldLease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost.Load() || h.released {
		return
	}
	h.released = true
	h.expiry.Stop()
	l := h.lease
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	if err := w.table.release(callCtx, &l); err != nil {
		w.log.Warn("release lease failed", telemetry.LogKeyShardID, l.Key, telemetry.LogKeyError, err.Error())
		return
	}
	h.lease = l
}

// syncShards lists the stream's shards and creates a lease for each shard that has none, parents before children.
// The whole sync gets FailoverTime, so that a hung call cannot stall the run loop.
func (w *Worker) syncShards(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.FailoverTime)
	defer cancel()
	shards, err := w.listShards(ctx)
	if err != nil {
		return err
	}
	leases, err := w.table.List(ctx)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(leases))
	for _, l := range leases {
		have[l.Key] = true
	}
	superseded := ancestorsOfLeased(shards, leases)
	// Shard ids grow with creation, so sorting puts parents before their children.
	slices.SortFunc(shards, func(a, b ktypes.Shard) int { return compareShardIDs(aws.ToString(a.ShardId), aws.ToString(b.ShardId)) })
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if have[id] || superseded[id] {
			continue // a shard whose descendant has a lease was read already; its own lease was cleaned up
		}
		var parents []string
		leasedParent := false
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p != nil && *p != "" {
				parents = append(parents, *p)
				leasedParent = leasedParent || have[*p]
			}
		}
		closed := s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
		checkpoint := initialCheckpoint(w.cfg.InitialPosition, leasedParent, closed)
		if checkpoint == "" {
			continue
		}
		l := Lease{Key: id, Checkpoint: checkpoint, ParentShardIDs: parents}
		if s.HashKeyRange != nil {
			l.StartingHashKey = aws.ToString(s.HashKeyRange.StartingHashKey)
			l.EndingHashKey = aws.ToString(s.HashKeyRange.EndingHashKey)
		}
		created, err := w.table.createIfNotExists(ctx, l)
		if err != nil {
			return err
		}
		have[id] = true
		if created {
			w.log.Info("lease created", telemetry.LogKeyShardID, id, "checkpoint", checkpoint, "parents", parents)
		}
	}
	return nil
}

// ancestorsOfLeased returns the shards that are ancestors of a shard with a lease. Leases are created parents
// first, so such a shard without a lease of its own either had one that the clean-up pass deleted (it was read to
// its end) or was never to be read (older than the initial position): it must not get a new lease.
func ancestorsOfLeased(shards []ktypes.Shard, leases []Lease) map[string]bool {
	parents := map[string][]string{}
	for _, s := range shards {
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p != nil && *p != "" {
				parents[aws.ToString(s.ShardId)] = append(parents[aws.ToString(s.ShardId)], *p)
			}
		}
	}
	for _, l := range leases {
		parents[l.Key] = append(parents[l.Key], l.ParentShardIDs...)
	}
	out := map[string]bool{}
	var stack []string
	for _, l := range leases {
		stack = append(stack, parents[l.Key]...)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if out[id] {
			continue
		}
		out[id] = true
		stack = append(stack, parents[id]...)
	}
	return out
}

// initialCheckpoint is the checkpoint of a new lease; empty means the shard gets no lease. A shard whose parent has
// a lease is read from its start (after the parent), so nothing written after the application's start is missed.
// With LATEST, closed shards without a leased parent hold only records from before the start: they get no lease.
func initialCheckpoint(initial string, leasedParent, closed bool) string {
	switch {
	case leasedParent:
		return CheckpointTrimHorizon
	case initial == CheckpointLatest && closed:
		return ""
	}
	return initial
}

// compareShardIDs orders shard ids by length, then bytes: "shardId-000000000010" after "shardId-000000000009".
func compareShardIDs(a, b string) int { return compareSequenceNumbers(a, b) }

func (w *Worker) listShards(ctx context.Context) ([]ktypes.Shard, error) {
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(w.cfg.StreamName)}
	for {
		out, err := w.kinesis.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", w.cfg.StreamName, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// childrenOf lists the shards whose parent is shardID.
func (w *Worker) childrenOf(ctx context.Context, shardID string) ([]string, error) {
	shards, err := w.listShards(ctx)
	if err != nil {
		return nil, err
	}
	var children []string
	for _, s := range shards {
		if aws.ToString(s.ParentShardId) == shardID || aws.ToString(s.AdjacentParentShardId) == shardID {
			children = append(children, aws.ToString(s.ShardId))
		}
	}
	return children, nil
}

// requestSync asks the run loop for a shard sync and a take pass (a shard ended).
func (w *Worker) requestSync() {
	select {
	case w.syncNow <- struct{}{}:
	default:
	}
}
