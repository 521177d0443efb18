package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
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
	if !bytes.Contains(line, []byte(`"`+kcl.MetricRecordsProcessed+`"`)) || !bytes.Contains(line, []byte(`"_aws"`)) {
		return 0, false
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(line, &doc) != nil {
		return 0, false
	}
	var v float64
	if json.Unmarshal(doc[kcl.MetricRecordsProcessed], &v) != nil {
		return 0, false
	}
	return int64(v), true
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
	sum, err := p.kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(p.cfg.Stream)})
	if err != nil {
		return s, fmt.Errorf("describe stream %s: %w", p.cfg.Stream, err)
	}
	s.OpenShards = int(aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))
	s.StreamStatus = string(sum.StreamDescriptionSummary.StreamStatus)
	return s, nil
}
