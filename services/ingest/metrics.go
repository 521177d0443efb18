package ingest

// Metric names the handler emits (as CloudWatch EMF through Config.Metrics);
// the dashboard refers to these constants.
const (
	// RequestLatency is the time from a request's arrival to its answer, in
	// milliseconds; with the default acknowledgement it includes the wait
	// for Kinesis.
	RequestLatency = "RequestLatency"
	// Requests2xx counts requests answered with a 2xx status.
	Requests2xx = "Requests2xx"
	// Requests4xx counts requests answered with a 4xx status (client
	// mistakes), including clients that left before their answer.
	Requests4xx = "Requests4xx"
	// Requests5xx counts requests answered with a 5xx status (overload,
	// shutdown, Kinesis failures).
	Requests5xx = "Requests5xx"
	// RejectedBufferFull counts records refused with 503 because the
	// producer's buffer was full.
	RejectedBufferFull = "RejectedBufferFull"
	// RecordsFailed counts records the producer took but could not get into
	// Kinesis (time to live expired, shutdown) while their client waited.
	RecordsFailed = "RecordsFailed"
	// BufferedRecordsFailed counts records acknowledged with 202 (?ack=buffered)
	// that later failed to reach Kinesis.
	BufferedRecordsFailed = "BufferedRecordsFailed"
)

// requestsMetric names the counter for a status class.
func requestsMetric(status int) string {
	switch {
	case status >= 500:
		return Requests5xx
	case status >= 400:
		return Requests4xx
	default:
		return Requests2xx
	}
}

// DimensionStream is the metric dimension naming the stream; the producer
// service puts it on every metric it writes, its engine's included.
const DimensionStream = "StreamName"
