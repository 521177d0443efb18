package kpl

import (
	"time"

	"github.com/streamproc/streamproc/services/telemetry"
)

// Metric names the producer emits: the KPL's names, so its dashboards and habits carry over,
// plus the buffer-full refusals the KPL does not have (it blocks or grows instead).
const (
	// MetricUserRecordsReceived counts records accepted by PutAsync.
	MetricUserRecordsReceived = "UserRecordsReceived"
	// MetricUserRecordsPut counts records Kinesis acknowledged.
	MetricUserRecordsPut = "UserRecordsPut"
	// MetricUserRecordsDataPut sums the data bytes of the records Kinesis acknowledged.
	MetricUserRecordsDataPut = "UserRecordsDataPut"
	// MetricKinesisRecordsPut counts PutRecords entries Kinesis acknowledged (aggregates).
	MetricKinesisRecordsPut = "KinesisRecordsPut"
	// MetricKinesisRecordsDataPut sums the bytes (data plus partition key) of those entries.
	MetricKinesisRecordsDataPut = "KinesisRecordsDataPut"
	// MetricErrorsByCode counts failed entries and requests, with dimension DimensionErrorCode.
	MetricErrorsByCode = "ErrorsByCode"
	// MetricRetriesPerRecord observes, per finished aggregate, the attempts beyond the first. Unlike
	// the KPL, which observes it once per user record, every record of an aggregate shares one
	// observation (the records of an aggregate are retried together).
	MetricRetriesPerRecord = "RetriesPerRecord"
	// MetricUserRecordExpired counts records failed with ErrRecordExpired.
	MetricUserRecordExpired = "UserRecordExpired"
	// MetricBufferingTime observes, per aggregate, the time from its first record's arrival to
	// its first send: the buffering its oldest record went through. The KPL observes it once per
	// user record; once per aggregate keeps the cost off the per-record path.
	MetricBufferingTime = "BufferingTime"
	// MetricUserRecordsPerKinesisRecord observes the number of records in each acknowledged entry.
	// An entry Kinesis stored in an unexpected shard counts the records settled there, possibly 0
	// (the others are re-put).
	MetricUserRecordsPerKinesisRecord = "UserRecordsPerKinesisRecord"
	// MetricUserRecordsRejectedBufferFull counts records refused with ErrBufferFull.
	MetricUserRecordsRejectedBufferFull = "UserRecordsRejectedBufferFull"

	// DimensionErrorCode is ErrorsByCode's dimension: a Kinesis error code, or
	// ErrorCodeTransport for a request that got no answer.
	DimensionErrorCode = "ErrorCode"
	// ErrorCodeTransport is the ErrorCode of requests that failed without a Kinesis error
	// code (connection errors, timeouts).
	ErrorCodeTransport = "Transport"
)

// counters accumulates metric values under the producer's lock; they are published to the
// sink outside it.
type counters struct {
	received, rejected, expired         int64
	userPut, userDataPut                int64
	kinesisPut, kinesisDataPut          int64
	errorsByCode                        map[string]int64
	bufferingTimes, retries, perKinesis []float64
}

func (c *counters) addError(code string) {
	if c.errorsByCode == nil {
		c.errorsByCode = make(map[string]int64)
	}
	c.errorsByCode[code]++
}

// publish sends the accumulated values to sink.
func (c *counters) publish(sink telemetry.Recorder) {
	count := func(name string, v int64) {
		if v != 0 {
			sink.Add(name, telemetry.UnitCount, float64(v))
		}
	}
	count(MetricUserRecordsReceived, c.received)
	count(MetricUserRecordsRejectedBufferFull, c.rejected)
	count(MetricUserRecordExpired, c.expired)
	count(MetricUserRecordsPut, c.userPut)
	count(MetricKinesisRecordsPut, c.kinesisPut)
	if c.userDataPut != 0 {
		sink.Add(MetricUserRecordsDataPut, telemetry.UnitBytes, float64(c.userDataPut))
	}
	if c.kinesisDataPut != 0 {
		sink.Add(MetricKinesisRecordsDataPut, telemetry.UnitBytes, float64(c.kinesisDataPut))
	}
	for code, n := range c.errorsByCode {
		sink.Add(MetricErrorsByCode, telemetry.UnitCount, float64(n), telemetry.Dimension{Name: DimensionErrorCode, Value: code})
	}
	for _, v := range c.bufferingTimes {
		sink.Observe(MetricBufferingTime, telemetry.UnitMilliseconds, v)
	}
	for _, v := range c.retries {
		sink.Observe(MetricRetriesPerRecord, telemetry.UnitCount, v)
	}
	for _, v := range c.perKinesis {
		sink.Observe(MetricUserRecordsPerKinesisRecord, telemetry.UnitCount, v)
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
