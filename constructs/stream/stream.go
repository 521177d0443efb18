// Package stream defines the Kinesis data stream (encrypted with the AWS-managed key alias/aws/kinesis) and the
// enhanced fan-out consumer registered on it for the consumer service. The stream is provisioned, with shard-level
// metrics on for the shard autoscaler, or on-demand, where Kinesis manages the shards itself.
package stream

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Defaults of Props.
const (
	// DefaultShardCount is the stream's initial shard count (the autoscaler changes it afterwards).
	DefaultShardCount = 5
	// DefaultRetentionHours is Kinesis's own default and minimum retention.
	DefaultRetentionHours = 24
	// MaxRetentionHours is Kinesis's maximum retention (365 days).
	MaxRetentionHours = 8760
)

// ShardLevelMetrics are the enhanced (per-shard) metrics the stream publishes. The shard autoscaler reads
// IncomingBytes, IncomingRecords and WriteProvisionedThroughputExceeded per shard to split hot shards and merge
// cold ones, and OutgoingBytes and IteratorAgeMilliseconds show the readers' side per shard on the dashboard.
var ShardLevelMetrics = []awskinesis.ShardLevelMetrics{
	awskinesis.ShardLevelMetrics_INCOMING_BYTES,
	awskinesis.ShardLevelMetrics_INCOMING_RECORDS,
	awskinesis.ShardLevelMetrics_WRITE_PROVISIONED_THROUGHPUT_EXCEEDED,
	awskinesis.ShardLevelMetrics_OUTGOING_BYTES,
	awskinesis.ShardLevelMetrics_OUTGOING_RECORDS,
	awskinesis.ShardLevelMetrics_ITERATOR_AGE_MILLISECONDS,
	awskinesis.ShardLevelMetrics_READ_PROVISIONED_THROUGHPUT_EXCEEDED,
}

// CapacityMode is how the stream's capacity is managed.
type CapacityMode string

// Capacity modes.
const (
	// Provisioned streams have the shard count they are given; the shard autoscaler changes it.
	Provisioned CapacityMode = "provisioned"
	// OnDemand streams are sized by Kinesis: a new one takes 4 MiB/s, and capacity follows twice the peak of the
	// last 30 days. They are billed per stream-hour and per GiB written and read.
	OnDemand CapacityMode = "onDemand"
)

// Props configures a Stream. The zero value is the documented default of every field but ConsumerName.
type Props struct {
	// CapacityMode is Provisioned or OnDemand. Default: Provisioned.
	CapacityMode CapacityMode
	// ShardCount is the initial number of shards of a provisioned stream (unused on-demand). Default:
	// DefaultShardCount.
	ShardCount int
	// RetentionHours is how long records stay readable, 24 to MaxRetentionHours. Default: DefaultRetentionHours.
	RetentionHours int
	// ConsumerName names the enhanced fan-out consumer registered on the stream (unique per stream). Required.
	ConsumerName *string
	// RemovalPolicy applies to the stream (the consumer goes with it). Default: awscdk.RemovalPolicy_DESTROY: the
	// records are transient (24 h by default) and a retained stream would keep costing per shard hour.
	RemovalPolicy awscdk.RemovalPolicy
}

// Stream is the data stream and its registered fan-out consumer.
type Stream struct {
	constructs.Construct
	// Stream is the Kinesis data stream.
	Stream awskinesis.Stream
	// Consumer is the enhanced fan-out consumer; its ARN goes to the consumer service.
	Consumer awskinesis.StreamConsumer
}

// New creates the stream and its consumer. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *Stream {
	p := Props{}
	if props != nil {
		p = *props
	}
	if p.CapacityMode == "" {
		p.CapacityMode = Provisioned
	}
	if p.ShardCount == 0 {
		p.ShardCount = DefaultShardCount
	}
	if p.RetentionHours == 0 {
		p.RetentionHours = DefaultRetentionHours
	}
	if p.RemovalPolicy == "" {
		p.RemovalPolicy = awscdk.RemovalPolicy_DESTROY
	}
	if p.CapacityMode != Provisioned && p.CapacityMode != OnDemand {
		panic(fmt.Sprintf("stream: CapacityMode is %q, want %q or %q", p.CapacityMode, Provisioned, OnDemand))
	}
	if p.ShardCount < 1 {
		panic(fmt.Sprintf("stream: ShardCount is %d, want at least 1", p.ShardCount))
	}
	if p.RetentionHours < DefaultRetentionHours || p.RetentionHours > MaxRetentionHours {
		panic(fmt.Sprintf("stream: RetentionHours is %d, want %d to %d", p.RetentionHours, DefaultRetentionHours, MaxRetentionHours))
	}
	if p.ConsumerName == nil || *p.ConsumerName == "" {
		panic("stream: ConsumerName is empty, want the name of the enhanced fan-out consumer")
	}

	this := constructs.NewConstruct(scope, id)
	sp := &awskinesis.StreamProps{
		StreamMode:      awskinesis.StreamMode_PROVISIONED,
		ShardCount:      jsii.Number(p.ShardCount),
		RetentionPeriod: awscdk.Duration_Hours(jsii.Number(p.RetentionHours)),
		Encryption:      awskinesis.StreamEncryption_MANAGED,
		RemovalPolicy:   p.RemovalPolicy,
	}
	if p.CapacityMode == OnDemand {
		// No shard count, and no shard-level metrics: nothing reads them (there is no autoscaler), and each costs
		// per shard, a number Kinesis changes on its own.
		sp.StreamMode, sp.ShardCount = awskinesis.StreamMode_ON_DEMAND, nil
	} else {
		metrics := make([]awskinesis.ShardLevelMetrics, len(ShardLevelMetrics))
		copy(metrics, ShardLevelMetrics)
		sp.ShardLevelMetrics = &metrics
	}
	s := awskinesis.NewStream(this, jsii.String("Stream"), sp)
	c := awskinesis.NewStreamConsumer(this, jsii.String("FanOutConsumer"), &awskinesis.StreamConsumerProps{
		Stream:             s,
		StreamConsumerName: p.ConsumerName,
	})
	return &Stream{Construct: this, Stream: s, Consumer: c}
}
