package kcl

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamproc/streamproc/services/telemetry"
)

// ReadMode selects how a worker reads its shards.
type ReadMode string

const (
	// ReadModePolling reads with GetShardIterator/GetRecords, at most 5 calls per second per shard.
	ReadModePolling ReadMode = "polling"
	// ReadModeFanOut reads with SubscribeToShard through a registered stream consumer (enhanced fan-out).
	ReadModeFanOut ReadMode = "fanout"
)

// Defaults of Config, the Java KCL's where it has one.
const (
	DefaultFailoverTime       = 10 * time.Second
	DefaultShardSyncInterval  = time.Minute
	DefaultMaxRecordsPerCall  = 10000
	DefaultPollIdleInterval   = time.Second
	DefaultMaxProcessAttempts = 10
	DefaultRetryBackoff       = 200 * time.Millisecond
	DefaultMaxRetryBackoff    = 10 * time.Second
	// DefaultShutdownTimeout bounds Run's graceful shutdown: under ECS's default 30 s stop timeout.
	DefaultShutdownTimeout     = 25 * time.Second
	DefaultResubscribeInterval = 4*time.Minute + 30*time.Second
	DefaultFanOutEndProbe      = 10 * time.Second
	// DefaultLeaseCleanupInterval is the Java KCL's interval of completed-shard lease checks.
	DefaultLeaseCleanupInterval = time.Minute
	// DefaultRebalanceThresholdPercent is the Java KCL 3.x's reBalanceThresholdPercentage.
	DefaultRebalanceThresholdPercent = 10
	// DefaultHandoffTimeout is the Java KCL 3.x's gracefulLeaseHandoffTimeoutMillis.
	DefaultHandoffTimeout = 30 * time.Second
	// minPollInterval keeps a polling reader at or below Kinesis's 5 GetRecords calls per second per shard.
	minPollInterval = 200 * time.Millisecond
)

// Config configures a Worker. The zero value of every optional field means the documented default.
type Config struct {
	// StreamName is the Kinesis stream to read. Required.
	StreamName string
	// LeaseTableName is the DynamoDB lease table; the Java KCL names it after the application. Required.
	LeaseTableName string
	// WorkerID identifies this worker as a lease owner; unique among the workers of the application. Required.
	WorkerID string
	// NewProcessor returns the Processor of one shard; it is called each time this worker starts reading a shard.
	// Required.
	NewProcessor func() Processor

	// ReadMode selects fan-out or polling. Default: ReadModePolling.
	ReadMode ReadMode
	// ConsumerARN is the registered stream consumer SubscribeToShard reads through. Required with ReadModeFanOut.
	ConsumerARN string
	// InitialPosition is where a shard without a checkpoint is read from when the application first meets it:
	// CheckpointTrimHorizon, CheckpointLatest or CheckpointAtTimestamp. Shards created by resharding are always read
	// from their start, after their parents. Default: CheckpointTrimHorizon, so that records written before the
	// first start are not missed (the Java KCL defaults to LATEST).
	InitialPosition string
	// InitialTimestamp is the position for CheckpointAtTimestamp. Required with it.
	InitialTimestamp time.Time
	// CreateLeaseTable creates the lease table when it does not exist (local runs). Default: false (in AWS the
	// stack owns the table).
	CreateLeaseTable bool

	// FailoverTime is how long a lease may go without renewal before other workers take it. Default: 10 s.
	FailoverTime time.Duration
	// RenewInterval is how often held leases are renewed. Default: FailoverTime / 3.
	RenewInterval time.Duration
	// TakeInterval is how often the worker looks for leases to take (new, released, expired, or to steal for
	// balance). Default: RenewInterval, so that released leases are taken within one or two renewal intervals.
	TakeInterval time.Duration
	// ShardSyncInterval is how often the worker lists the stream's shards to create leases for new ones (it also
	// syncs at start and whenever one of its shards ends). Default: 1 minute.
	ShardSyncInterval time.Duration
	// LeaseCleanupInterval is how often the worker deletes the leases that are no longer needed: those of shards
	// at SHARD_END whose children all started, and those of shards that aged out of the stream (see the Java KCL's
	// LeaseCleanupManager). Default: 1 minute.
	LeaseCleanupInterval time.Duration

	// Balancing chooses what the workers even out: their load, the sum of their leases' smoothed throughput
	// (BalancingLoad, falling back to counts while no throughput is known), or their lease counts (BalancingCount).
	// Either way a lease moves from a busier worker by graceful hand-off, one at a time per worker, and only when
	// the move leaves the taker no busier than the giver, so that no lease moves back and forth; a lease that moved
	// stays for at least three renewal intervals. Default: BalancingLoad.
	Balancing Balancing
	// RebalanceThresholdPercent is the band around the mean load within which workers count as balanced: a worker
	// below mean × (1 - p/100) takes load, and so does the least loaded worker while another is above
	// mean × (1 + p/100). 1 to 100. Default: 10 (the Java KCL 3.x's reBalanceThresholdPercentage).
	RebalanceThresholdPercent int
	// HandoffTimeout is how long a worker that started the hand-off of a lease waits, on top of FailoverTime, for the
	// old owner to checkpoint and let go before it takes the lease anyway. Default: 30 s (the Java KCL 3.x's
	// gracefulLeaseHandoffTimeoutMillis).
	HandoffTimeout time.Duration

	// MaxRecordsPerCall is GetRecords' Limit. Default: 10000.
	MaxRecordsPerCall int32
	// PollIdleInterval is the pause of a polling reader after a call that returned no records and was not behind.
	// Default: 1 s.
	PollIdleInterval time.Duration
	// ResubscribeInterval is how long a fan-out subscription is used before a new one is opened (AWS ends them
	// after 5 minutes). Default: 4 min 30 s.
	ResubscribeInterval time.Duration
	// FanOutEndProbeInterval is how often an idle fan-out reader checks, with GetRecords, whether its shard has
	// ended (for endpoints that never send ChildShards over fan-out). Default: 10 s.
	FanOutEndProbeInterval time.Duration

	// ProcessEmptyBatches calls ProcessRecords with an empty batch after a read that returned no new records (the
	// Java KCL's callProcessRecordsEvenForEmptyRecordList), so that a processor that checkpoints every N seconds
	// does so on an idle shard too. Default: false (only batches with records are delivered).
	ProcessEmptyBatches bool

	// MaxProcessAttempts is how many times a batch is given to the processor, or how many times a processor is
	// restarted from the same checkpoint (ErrRestartFromCheckpoint), before the worker gives up the lease so another
	// worker retries. Default: 10.
	MaxProcessAttempts int
	// RetryBackoff paces every retry of the worker: of a failed processor call, of a failed read of a shard, of a
	// failed ListShards for the children of an ended shard, and of a failed first shard sync at start. After the
	// n-th failure in a row the pause is drawn at random from [d/2, d], where d is RetryBackoff doubled n-1 times
	// and at most MaxRetryBackoff; the jitter keeps workers that failed together from retrying together.
	// Default: 200 ms.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the doubling of RetryBackoff: no retry pause is longer. Default: 10 s.
	MaxRetryBackoff time.Duration

	// ShutdownTimeout bounds the graceful shutdown Run begins when its context is cancelled; past it the worker
	// stops at once, and the leases not yet released expire after FailoverTime. Default: 25 s.
	ShutdownTimeout time.Duration

	// Logger receives the worker's logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the metrics named Metric... (a *telemetry.Metrics writes them as EMF). Default: none.
	Metrics telemetry.Recorder
}

// withDefaults returns cfg with defaults applied, or an error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	steps := []func() error{
		cfg.checkRequired,
		cfg.defaultReadMode,
		cfg.defaultInitialPosition,
		cfg.defaultDurations,
		cfg.defaultLeaseIntervals,
		cfg.defaultReadLimits,
		cfg.defaultProcessAttempts,
		cfg.defaultBalancing,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return cfg, err
		}
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.Metrics = cmp.Or(cfg.Metrics, telemetry.Discard)
	return cfg, nil
}

// checkRequired fails on the first required field left empty.
func (cfg *Config) checkRequired() error {
	switch {
	case cfg.StreamName == "":
		return errors.New("kcl: StreamName is required")
	case cfg.LeaseTableName == "":
		return errors.New("kcl: LeaseTableName is required")
	case cfg.WorkerID == "":
		return errors.New("kcl: WorkerID is required")
	case cfg.NewProcessor == nil:
		return errors.New("kcl: NewProcessor is required")
	}
	return nil
}

// defaultReadMode defaults ReadMode to polling and checks that fan-out has its consumer.
func (cfg *Config) defaultReadMode() error {
	cfg.ReadMode = cmp.Or(cfg.ReadMode, ReadModePolling)
	switch cfg.ReadMode {
	case ReadModePolling:
	case ReadModeFanOut:
		if cfg.ConsumerARN == "" {
			return errors.New("kcl: ConsumerARN is required with ReadModeFanOut")
		}
	default:
		return fmt.Errorf("kcl: ReadMode %q: want %q or %q", cfg.ReadMode, ReadModePolling, ReadModeFanOut)
	}
	return nil
}

// defaultInitialPosition defaults InitialPosition to TRIM_HORIZON and checks that AT_TIMESTAMP has its timestamp.
func (cfg *Config) defaultInitialPosition() error {
	cfg.InitialPosition = cmp.Or(cfg.InitialPosition, CheckpointTrimHorizon)
	switch cfg.InitialPosition {
	case CheckpointTrimHorizon, CheckpointLatest:
	case CheckpointAtTimestamp:
		if cfg.InitialTimestamp.IsZero() {
			return errors.New("kcl: InitialTimestamp is required with AT_TIMESTAMP")
		}
	default:
		return fmt.Errorf("kcl: InitialPosition %q: want TRIM_HORIZON, LATEST or AT_TIMESTAMP", cfg.InitialPosition)
	}
	return nil
}

// defaultDurations applies the default of every duration that has a fixed one, and rejects negative ones.
func (cfg *Config) defaultDurations() error {
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FailoverTime", &cfg.FailoverTime, DefaultFailoverTime},
		{"ShardSyncInterval", &cfg.ShardSyncInterval, DefaultShardSyncInterval},
		{"LeaseCleanupInterval", &cfg.LeaseCleanupInterval, DefaultLeaseCleanupInterval},
		{"PollIdleInterval", &cfg.PollIdleInterval, DefaultPollIdleInterval},
		{"ResubscribeInterval", &cfg.ResubscribeInterval, DefaultResubscribeInterval},
		{"FanOutEndProbeInterval", &cfg.FanOutEndProbeInterval, DefaultFanOutEndProbe},
		{"RetryBackoff", &cfg.RetryBackoff, DefaultRetryBackoff},
		{"MaxRetryBackoff", &cfg.MaxRetryBackoff, DefaultMaxRetryBackoff},
		{"ShutdownTimeout", &cfg.ShutdownTimeout, DefaultShutdownTimeout},
		{"HandoffTimeout", &cfg.HandoffTimeout, DefaultHandoffTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return fmt.Errorf("kcl: %s %v: want > 0 (or 0 for the default %v)", d.name, *d.v, d.def)
		}
		*d.v = cmp.Or(*d.v, d.def)
	}
	return nil
}

// defaultLeaseIntervals derives RenewInterval and TakeInterval from FailoverTime (defaulted before), and checks that
// a lease is renewed within its failover time.
func (cfg *Config) defaultLeaseIntervals() error {
	if cfg.RenewInterval < 0 || cfg.TakeInterval < 0 {
		return errors.New("kcl: RenewInterval and TakeInterval must not be negative")
	}
	cfg.RenewInterval = cmp.Or(cfg.RenewInterval, cfg.FailoverTime/3)
	if cfg.RenewInterval == 0 { // a ticker needs a positive period
		return fmt.Errorf("kcl: FailoverTime %v: too short to renew leases within it", cfg.FailoverTime)
	}
	if cfg.RenewInterval >= cfg.FailoverTime {
		return fmt.Errorf("kcl: RenewInterval %v: want less than FailoverTime %v", cfg.RenewInterval, cfg.FailoverTime)
	}
	cfg.TakeInterval = cmp.Or(cfg.TakeInterval, cfg.RenewInterval)
	return nil
}

// defaultReadLimits checks the limits Kinesis sets on reads, and defaults MaxRecordsPerCall.
func (cfg *Config) defaultReadLimits() error {
	if cfg.ResubscribeInterval >= 5*time.Minute {
		return fmt.Errorf("kcl: ResubscribeInterval %v: want less than 5 minutes (the subscription limit)", cfg.ResubscribeInterval)
	}
	if cfg.MaxRecordsPerCall < 0 || cfg.MaxRecordsPerCall > 10000 {
		return fmt.Errorf("kcl: MaxRecordsPerCall %d: want 1-10000 (or 0 for the default)", cfg.MaxRecordsPerCall)
	}
	cfg.MaxRecordsPerCall = cmp.Or(cfg.MaxRecordsPerCall, DefaultMaxRecordsPerCall)
	return nil
}

// defaultProcessAttempts defaults MaxProcessAttempts and rejects a negative one.
func (cfg *Config) defaultProcessAttempts() error {
	if cfg.MaxProcessAttempts < 0 {
		return fmt.Errorf("kcl: MaxProcessAttempts %d: want >= 1 (or 0 for the default)", cfg.MaxProcessAttempts)
	}
	cfg.MaxProcessAttempts = cmp.Or(cfg.MaxProcessAttempts, DefaultMaxProcessAttempts)
	return nil
}

// defaultBalancing defaults Balancing and RebalanceThresholdPercent and checks them.
func (cfg *Config) defaultBalancing() error {
	cfg.Balancing = cmp.Or(cfg.Balancing, BalancingLoad)
	if cfg.Balancing != BalancingLoad && cfg.Balancing != BalancingCount {
		return fmt.Errorf("kcl: Balancing %q: want %q or %q", cfg.Balancing, BalancingLoad, BalancingCount)
	}
	if cfg.RebalanceThresholdPercent < 0 || cfg.RebalanceThresholdPercent > 100 {
		return fmt.Errorf("kcl: RebalanceThresholdPercent %d: want 1-100 (or 0 for the default %d)",
			cfg.RebalanceThresholdPercent, DefaultRebalanceThresholdPercent)
	}
	cfg.RebalanceThresholdPercent = cmp.Or(cfg.RebalanceThresholdPercent, DefaultRebalanceThresholdPercent)
	return nil
}
