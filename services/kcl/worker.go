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
	// handoffs are the leases being handed over to this worker, and when it first saw each: a hand-off that takes
	// longer than HandoffTimeout + FailoverTime falls back to a take.
	handoffs map[string]time.Time
	stopping bool
	// noOwnerIndex is set once the lease table turns out to have no usable LeaseOwnerIndexName.
	noOwnerIndex atomic.Bool
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
	stopReading chan struct{}      // closed (by stopConsumer) for a graceful shutdown or a hand-off
	stopOnce    sync.Once

	// meter measures the lease's throughput.
	meter throughputMeter
}

// stopConsumer asks h's consumer to stop reading, finish its batch, checkpoint and let the lease go.
func (h *heldLease) stopConsumer() {
	h.stopOnce.Do(func() { close(h.stopReading) })
}

// written records a successful write of h that started at start: the lease is safe for FailoverTime from then.
func (w *Worker) written(h *heldLease, start time.Time) {
	h.expiry.Reset(w.cfg.FailoverTime - time.Since(start))
}

// observedCounter is a lease counter and owner and when this worker saw them change: a lease whose counter has not
// moved for FailoverTime has expired (its owner stopped renewing); one whose owner changed recently has not settled.
type observedCounter struct {
	counter        int64
	changedAt      time.Time
	owner          string
	ownerChangedAt time.Time
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
		handoffs:   make(map[string]time.Time),
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
	// Renewals keep their own pace: a slow take pass, discovery or shard sync must not let the held leases expire.
	w.renewals.Go(func() { w.renewEvery(runCtx) })

	take := time.NewTicker(w.cfg.TakeInterval)
	defer take.Stop()
	sync := time.NewTicker(w.cfg.ShardSyncInterval)
	defer sync.Stop()
	cleanup := time.NewTicker(w.cfg.LeaseCleanupInterval)
	defer cleanup.Stop()
	discover := time.NewTicker(w.cfg.RenewInterval / 2)
	defer discover.Stop()

	for {
		select {
		case <-ctx.Done():
			cancelRun()
			w.consumers.Wait()
			return ctx.Err()
		case <-w.shutdown:
			return w.drain(ctx, cancelRun)
		case <-take.C:
			w.takeLeases(runCtx)
		case <-discover.C:
			w.discoverLeases(runCtx)
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

// renewEvery renews the held leases every RenewInterval until ctx ends.
func (w *Worker) renewEvery(ctx context.Context) {
	renew := time.NewTicker(w.cfg.RenewInterval)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			w.renewLeases(ctx)
		}
	}
}

func (w *Worker) logSyncError(err error) {
	if err != nil {
		w.log.Warn("shard sync failed", telemetry.LogKeyError, err.Error())
	}
}

// drain runs the graceful shutdown: every consumer stops reading, finishes its batch, lets its processor checkpoint
// and releases its lease; leases are renewed meanwhile (renewEvery).
func (w *Worker) drain(ctx context.Context, cancelRun context.CancelFunc) error {
	w.mu.Lock()
	w.stopping = true
	for _, h := range w.held {
		h.stopConsumer()
	}
	w.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		w.consumers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		w.log.Info("worker shut down")
		return nil
	case <-ctx.Done():
		cancelRun()
		<-finished
		return ctx.Err()
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
	load := 0.0
	for _, h := range hs {
		kbps, _ := h.meter.current()
		load += kbps
	}
	w.metrics.observe(MetricCurrentLeases, telemetry.UnitCount, float64(len(hs)))
	w.metrics.observe(MetricWorkerLoad, telemetry.UnitNone, load, telemetry.Dimension{Name: DimensionWorkerID, Value: w.cfg.WorkerID})
}

func (w *Worker) renew(ctx context.Context, h *heldLease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost.Load() || h.released {
		return
	}
	start := time.Now()
	kbps := h.meter.sample(start)
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	err := w.writeHeld(callCtx, h, func(l *Lease) error { return w.table.renew(callCtx, l, kbps) })
	switch {
	case err == nil:
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

// takeLeases looks at every lease and takes what this worker should read (see planTakes): its own, then new,
// released and expired leases up to its share of the load, otherwise it may start the hand-off of one lease from a
// busier worker.
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
		o, ok := w.observed[l.Key]
		if !ok || o.counter != l.Counter {
			o.counter, o.changedAt = l.Counter, now
		}
		if !ok || o.owner != l.Owner {
			o.owner, o.ownerChangedAt = l.Owner, now
		}
		w.observed[l.Key] = o
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
		now: now, failover: w.cfg.FailoverTime, balancing: w.cfg.Balancing,
		threshold: float64(w.cfg.RebalanceThresholdPercent) / 100, settle: settleRenewals * w.cfg.RenewInterval,
		random: w.takeRandom})
	w.mu.Unlock()

	w.log.Debug("take pass", "load", plan.load, "mean_load", plan.mean, "workers", plan.workers, "take", len(plan.take),
		"hand_off", plan.handOff != nil)
	for _, l := range plan.take {
		w.takeOne(ctx, l)
	}
	if plan.handOff != nil {
		w.startHandoff(ctx, *plan.handOff)
	}
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

// claim makes this worker the owner of l with write (a take, or the start of a hand-off), within RenewInterval. It
// reports whether the write succeeded; a failure other than a lost race (another worker wrote the lease first) is
// logged.
func (w *Worker) claim(ctx context.Context, op string, l *Lease, write func(context.Context, *Lease, string) error) bool {
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	err := write(callCtx, l, w.cfg.WorkerID)
	if err != nil && !errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
		w.log.Warn(op+" failed", telemetry.LogKeyShardID, l.Key, telemetry.LogKeyError, err.Error())
	}
	return err == nil
}

// takeOne takes a lease (conditional on the counter read) and starts its consumer.
func (w *Worker) takeOne(ctx context.Context, l Lease) {
	previous := l.Owner
	start := time.Now()
	if !w.claim(ctx, "take lease", &l, w.table.take) {
		return
	}
	w.metrics.count(MetricLeasesTaken, telemetry.UnitCount, 1)
	shardCtx, cancel := context.WithCancel(ctx)
	h := &heldLease{key: l.Key, lease: l, cancel: cancel, stopReading: make(chan struct{})}
	h.meter.start(start, l)
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

// release gives a held lease up so that any worker can take it at once; a lease being handed over goes to its new
// owner (finishHandoff). handedOver tells which happened.
func (w *Worker) release(ctx context.Context, h *heldLease) (handedOver bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost.Load() || h.released {
		return false
	}
	h.released = true
	h.expiry.Stop()
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	err := w.writeHeld(callCtx, h, func(l *Lease) error {
		if handedOver = l.CheckpointOwner == w.cfg.WorkerID; handedOver {
			return w.table.finishHandoff(callCtx, l)
		}
		return w.table.release(callCtx, l)
	})
	if err != nil {
		w.log.Warn("release lease failed", telemetry.LogKeyShardID, h.key, telemetry.LogKeyError, err.Error())
		return false
	}
	return handedOver
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
