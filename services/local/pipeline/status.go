package pipeline

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Status is a snapshot of the pipeline for the live status line.
type Status struct {
	// RecordsIn is the user records the producer reported put to the stream (from its EMF lines, so it trails by up
	// to one metrics interval).
	RecordsIn int64
	// RecordsProcessed is the record lines the consumer workers wrote, re-deliveries after a failover included.
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

// processedCounter counts the record lines of one worker's log.
type processedCounter struct {
	tail  lineTail
	count int64
}

// recordLineMarker is in every record line the consumer writes (its JSON field arrival_time) and in none of its log
// lines (which may carry a sequence_number, for example when an aggregate is corrupt).
var recordLineMarker = []byte(`"arrival_time":`)

// isRecordLine reports whether a consumer log line is a processed record rather than a log or metric line.
func isRecordLine(line []byte) bool { return bytes.Contains(line, recordLineMarker) }

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
			if isRecordLine(line) {
				c.count++
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
