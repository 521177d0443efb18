package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/streamproc/streamproc/services/kpl"
)

// The stream metrics Kinesis publishes in AWS and the autoscaler reads (package scaler queries these names).
// kinesis-local publishes none, so the runner publishes them to the CloudWatch emulator from the producer's own
// metrics.
const (
	// KinesisNamespace is the namespace of Kinesis's stream metrics.
	KinesisNamespace = "AWS/Kinesis"
	// MetricIncomingBytes is the bytes put to the stream (data and partition keys of the Kinesis records).
	MetricIncomingBytes = "IncomingBytes"
	// MetricIncomingRecords is the Kinesis records put to the stream (an aggregate counts as one, as in AWS).
	MetricIncomingRecords = "IncomingRecords"
	// DimensionStreamName names the stream.
	DimensionStreamName = "StreamName"
)

// maxDatumsPerCall is PutMetricData's limit of datums per request.
const maxDatumsPerCall = 1000

// putMetricDataAPI is the part of the CloudWatch client the publisher calls.
type putMetricDataAPI interface {
	PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// producerMetrics is what one EMF line of the producer says about one metrics interval.
type producerMetrics struct {
	At             time.Time
	KinesisRecords float64 // kpl.MetricKinesisRecordsPut
	KinesisBytes   float64 // kpl.MetricKinesisRecordsDataPut
	UserRecords    float64 // kpl.MetricUserRecordsPut
}

// parseProducerEMF reads the producer's put counters from an EMF line; ok is false for any other line (logs, or
// EMF lines of other dimension sets).
func parseProducerEMF(line []byte) (m producerMetrics, ok bool) {
	if !bytes.Contains(line, []byte(`"`+kpl.MetricKinesisRecordsPut+`"`)) {
		return m, false
	}
	var doc struct {
		AWS struct {
			Timestamp int64 `json:"Timestamp"`
		} `json:"_aws"`
		KinesisRecords *float64 `json:"KinesisRecordsPut"`
		KinesisBytes   *float64 `json:"KinesisRecordsDataPut"`
		UserRecords    *float64 `json:"UserRecordsPut"`
	}
	if err := json.Unmarshal(line, &doc); err != nil || doc.AWS.Timestamp == 0 || doc.KinesisRecords == nil {
		return m, false
	}
	m.At = time.UnixMilli(doc.AWS.Timestamp)
	m.KinesisRecords = *doc.KinesisRecords
	if doc.KinesisBytes != nil {
		m.KinesisBytes = *doc.KinesisBytes
	}
	if doc.UserRecords != nil {
		m.UserRecords = *doc.UserRecords
	}
	return m, true
}

// streamMetricsPublisher turns the producer's EMF lines into the stream's IncomingBytes and IncomingRecords
// datapoints in the CloudWatch emulator, each at the time of its EMF line, so that CloudWatch's per-minute sums are
// what Kinesis would report. It also totals the user records put, for the status line.
type streamMetricsPublisher struct {
	stream string
	cw     putMetricDataAPI

	mu        sync.Mutex
	tail      lineTail
	pending   []producerMetrics
	recordsIn int64
}

// publish reads the producer log's new lines and puts their datapoints. Datapoints that fail to go out are kept for
// the next call.
func (p *streamMetricsPublisher) publish(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readLocked(); err != nil {
		return err
	}
	stream := []cwtypes.Dimension{{Name: aws.String(DimensionStreamName), Value: aws.String(p.stream)}}
	for len(p.pending) > 0 {
		n := min(len(p.pending), maxDatumsPerCall/2)
		data := make([]cwtypes.MetricDatum, 0, 2*n)
		for _, m := range p.pending[:n] {
			data = append(data,
				cwtypes.MetricDatum{MetricName: aws.String(MetricIncomingBytes), Dimensions: stream, Timestamp: aws.Time(m.At),
					Unit: cwtypes.StandardUnitBytes, Value: aws.Float64(m.KinesisBytes)},
				cwtypes.MetricDatum{MetricName: aws.String(MetricIncomingRecords), Dimensions: stream, Timestamp: aws.Time(m.At),
					Unit: cwtypes.StandardUnitCount, Value: aws.Float64(m.KinesisRecords)},
			)
		}
		if _, err := p.cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(KinesisNamespace), MetricData: data}); err != nil {
			return fmt.Errorf("put %s metrics of %s: %w", KinesisNamespace, p.stream, err)
		}
		p.pending = p.pending[n:]
	}
	return nil
}

// readLocked takes the producer log's new EMF lines into pending and the total; p.mu is held.
func (p *streamMetricsPublisher) readLocked() error {
	return p.tail.next(func(line []byte) {
		if m, ok := parseProducerEMF(line); ok {
			p.pending = append(p.pending, m)
			p.recordsIn += int64(m.UserRecords)
		}
	})
}

// userRecordsPut reads the producer log's new lines and returns the total of user records the producer reported as put, up to its last EMF line read.
func (p *streamMetricsPublisher) userRecordsPut() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.readLocked()
	return p.recordsIn, err
}
