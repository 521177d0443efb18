package kcl

import "github.com/streamproc/streamproc/services/telemetry"

// Metric names the worker emits (EMF, through telemetry.Metrics). The dashboard and alarms use these constants.
const (
	// MetricRecordsProcessed counts user records the processor accepted.
	MetricRecordsProcessed = "RecordsProcessed"
	// MetricBytesProcessed counts the payload bytes of those records.
	MetricBytesProcessed = "BytesProcessed"
	// MetricMillisBehindLatest observes how far reads are behind the tip of their shard.
	MetricMillisBehindLatest = "MillisBehindLatest"
	// MetricCurrentLeases observes the number of leases this worker holds, once per renewal.
	MetricCurrentLeases = "CurrentLeases"
	// MetricLeasesTaken counts leases this worker took (new, released, expired or stolen).
	MetricLeasesTaken = "LeasesTaken"
	// MetricLeasesLost counts leases this worker lost or gave up.
	MetricLeasesLost = "LeasesLost"
	// MetricLeasesCleanedUp counts leases the clean-up pass deleted (finished shards whose children started, and
	// shards that aged out of the stream).
	MetricLeasesCleanedUp = "LeasesCleanedUp"
	// MetricProcessingErrors counts failed (errored or panicked) processor calls and corrupt aggregates.
	MetricProcessingErrors = "ProcessingErrors"
	// MetricRecordsOutsideShardRange counts aggregated user records whose hash key lies outside their shard.
	MetricRecordsOutsideShardRange = "RecordsOutsideShardRange"
	// MetricWorkerLoad observes, once per renewal, the sum of the smoothed throughput (KB/s) of the leases this worker
	// holds: the load lease balancing evens out. It carries the DimensionWorkerID dimension, so that each worker
	// has its own series.
	MetricWorkerLoad = "WorkerLoadKBps"
	// MetricLeaseMoves counts the graceful hand-offs this worker started to move a lease from a busier worker.
	MetricLeaseMoves = "LeaseMoves"
	// MetricHandoffTimeouts counts hand-offs to this worker that the old owner did not finish in time, and that
	// fell back to a take.
	MetricHandoffTimeouts = "LeaseHandoffTimeouts"
)

// DimensionWorkerID is the dimension that names the worker on MetricWorkerLoad.
const DimensionWorkerID = "WorkerId"

// metricsSink sends the worker's metrics to a telemetry.Recorder, leaving out counts of zero.
type metricsSink struct{ m telemetry.Recorder }

func (s metricsSink) count(name string, unit telemetry.Unit, v float64) {
	if v != 0 {
		s.m.Add(name, unit, v)
	}
}

func (s metricsSink) observe(name string, unit telemetry.Unit, v float64, dims ...telemetry.Dimension) {
	s.m.Observe(name, unit, v, dims...)
}
