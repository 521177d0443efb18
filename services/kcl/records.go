package kcl

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamproc/streamproc/services/kpl"
)

// recordBuilder turns the Kinesis records of one shard into user records. It reuses its buffers from batch to batch,
// so a batch's records are valid until the next call to build.
type recordBuilder struct {
	shardID string
	rng     hashRange
	deagg   []kpl.UserRecord
	out     []Record
}

// buildStats counts what build noticed in one batch.
type buildStats struct {
	outsideRange int
	corrupt      int
	bytes        int
}

// corruptRecord describes an aggregate that failed to decode; it is delivered whole, as one record.
type corruptRecord struct {
	sequenceNumber string
	err            error
}

// build deaggregates raw and returns the user records positioned after (afterSeq, afterSub); afterSeq empty means
// every record. Corrupt aggregates are delivered as one record holding the undecoded bytes (never dropped) and
// reported through corrupt.
func (b *recordBuilder) build(raw []ktypes.Record, afterSeq string, afterSub int64, corrupt func(corruptRecord)) ([]Record, buildStats) {
	var st buildStats
	b.out = b.out[:0]
	for i := range raw {
		r := &raw[i]
		seq := aws.ToString(r.SequenceNumber)
		cmp := 1
		if afterSeq != "" {
			cmp = compareSequenceNumbers(seq, afterSeq)
			if cmp < 0 {
				continue // wholly before the resume position
			}
		}
		pk := aws.ToString(r.PartitionKey)
		var arrival time.Time
		if r.ApproximateArrivalTimestamp != nil {
			arrival = *r.ApproximateArrivalTimestamp
		}
		var err error
		b.deagg, err = kpl.Deaggregate(b.deagg[:0], pk, r.Data)
		if err != nil {
			st.corrupt++
			if corrupt != nil {
				corrupt(corruptRecord{sequenceNumber: seq, err: err})
			}
			b.deagg = append(b.deagg[:0], kpl.UserRecord{PartitionKey: pk, Data: r.Data})
		}
		for j := range b.deagg {
			u := &b.deagg[j]
			if cmp == 0 && u.SubSequenceNumber <= afterSub {
				continue // processed before the restart, inside the checkpointed aggregate
			}
			outside := false
			if u.Aggregated && !b.rng.contains(kpl.UserRecordHashKey(u.PartitionKey, u.ExplicitHashKey)) {
				outside = true
				st.outsideRange++
			}
			st.bytes += len(u.Data)
			b.out = append(b.out, Record{
				ShardID:                     b.shardID,
				SequenceNumber:              seq,
				SubSequenceNumber:           u.SubSequenceNumber,
				PartitionKey:                u.PartitionKey,
				ExplicitHashKey:             u.ExplicitHashKey,
				Data:                        u.Data,
				ApproximateArrivalTimestamp: arrival,
				Aggregated:                  u.Aggregated,
				OutsideShardRange:           outside,
			})
		}
	}
	return b.out, st
}
