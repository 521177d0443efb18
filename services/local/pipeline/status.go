package pipeline

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamproc/streamproc/services/kcl"
)

// Status is a snapshot of the pipeline for the live status line.
type Status struct {
	// RecordsIn is the user records the producer reported put to the stream (from its EMF lines, so it trails by up
	// to one metrics interval).
	RecordsIn int64
	// RecordsProcessed is the user records the consumer workers reported processed (their EMF RecordsProcessed, so it
	// trails by up to one metrics interval, whatever the processor), re-deliveries after a failover included.
	RecordsProcessed int64
	// Behind is RecordsIn - RecordsProcessed, or 0 when re-deliveries make it negative.
	Behind int64
	// OpenShards is the stream's open shard count.
	OpenShards int
	// StreamStatus is the stream's status (UPDATING while a resharding runs).
	StreamStatus string
	// LastScaling is the autoscaler's last action (or problem); empty while it has done nothing.
	LastScaling string
}

// String is the status line.
func (s Status) String() string {
	line := fmt.Sprintf("records in %d · processed %d · behind %d · shards %d", s.RecordsIn, s.RecordsProcessed, s.Behind, s.OpenShards)
	if s.StreamStatus != "" && s.StreamStatus != "ACTIVE" {
		line += " (" + s.StreamStatus + ")"
	}
	if s.LastScaling != "" {
		line += " · autoscaler: " + s.LastScaling
	}
	return line
}

// processedCounter totals the RecordsProcessed metric of one worker's log.
type processedCounter struct {
	tail  lineTail
	count int64
}

// recordsProcessed reads the RecordsProcessed counter of a consumer's EMF line; ok is false for any other line
// (records, logs, other metrics).
func recordsProcessed(line []byte) (n int64, ok bool) {
	l, ok := parseEMF(line)
	v, has := l.Values[kcl.MetricRecordsProcessed]
	if !ok || !has || len(v) != 1 {
		return 0, false
	}
	return int64(v[0]), true
}

// Status reads the logs written since the last call and the stream's shard count.
func (p *Pipeline) Status(ctx context.Context) (Status, error) {
	var s Status
	in, err := p.publisher.userRecordsPut()
	if err != nil {
		return s, err
	}
	s.RecordsIn = in
	p.mu.Lock()
	for _, c := range p.processed {
		if err := c.tail.next(func(line []byte) {
			if n, ok := recordsProcessed(line); ok {
				c.count += n
			}
		}); err != nil {
			p.mu.Unlock()
			return s, err
		}
		s.RecordsProcessed += c.count
	}
	s.LastScaling = p.lastScaling
	p.mu.Unlock()
	s.Behind = max(0, s.RecordsIn-s.RecordsProcessed)
	sum, err := p.describeStream(ctx)
	if err != nil {
		return s, err
	}
	s.OpenShards = int(aws.ToInt32(sum.OpenShardCount))
	s.StreamStatus = string(sum.StreamStatus)
	return s, nil
}

// describeStream is the stream's summary.
func (p *Pipeline) describeStream(ctx context.Context) (*types.StreamDescriptionSummary, error) {
	out, err := p.kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(p.cfg.Stream)})
	if err != nil {
		return nil, fmt.Errorf("describe stream %s: %w", p.cfg.Stream, err)
	}
	return out.StreamDescriptionSummary, nil
}

// openShards is the stream's open shard count.
func (p *Pipeline) openShards(ctx context.Context) (int, error) {
	sum, err := p.describeStream(ctx)
	if err != nil {
		return 0, err
	}
	return int(aws.ToInt32(sum.OpenShardCount)), nil
}
