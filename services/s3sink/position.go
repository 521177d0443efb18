package s3sink

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamproc/streamproc/services/kcl"
)

// position is a user record's place in its shard: the Kinesis sequence number and the place inside its aggregate.
type position struct {
	seq string
	sub int64
}

func positionOf(r *kcl.Record) position { return position{r.SequenceNumber, r.SubSequenceNumber} }

// compare orders two positions of one shard. Sequence numbers are decimal strings without leading zeros, so the
// longer is the larger and equal lengths compare as text.
func (p position) compare(o position) int {
	switch {
	case len(p.seq) != len(o.seq):
		return cmp.Compare(len(p.seq), len(o.seq))
	case p.seq != o.seq:
		return strings.Compare(p.seq, o.seq)
	}
	return cmp.Compare(p.sub, o.sub)
}

func (p position) String() string { return p.seq + "/" + strconv.FormatInt(p.sub, 10) }

// ObjectKey is the key of the object whose first record is r: it depends on that record alone (its arrival hour,
// in UTC, and its position), so every worker that starts an object at r names it the same.
func ObjectKey(prefix string, f Format, r *kcl.Record) string {
	t := r.ApproximateArrivalTimestamp.UTC()
	name := fmt.Sprintf("dt=%s/hr=%02d/%s-%s-%d%s", t.Format(time.DateOnly), t.Hour(), r.ShardID, r.SequenceNumber,
		r.SubSequenceNumber, f.Extension())
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// lastPositionOf reads the position of an object's last record from its metadata.
func lastPositionOf(metadata map[string]string) (position, error) {
	seq := metadata[MetadataLastSequenceNumber]
	sub, err := strconv.ParseInt(metadata[MetadataLastSubSequenceNumber], 10, 64)
	if err != nil || seq == "" || strings.TrimLeft(seq, "0123456789") != "" || sub < 0 {
		return position{}, fmt.Errorf("object metadata names no last record (%s=%q, %s=%q)", MetadataLastSequenceNumber,
			seq, MetadataLastSubSequenceNumber, metadata[MetadataLastSubSequenceNumber])
	}
	return position{seq, sub}, nil
}

// metadataOf is the metadata of an object that holds records first to last.
func metadataOf(first, last position, records int) map[string]string {
	return map[string]string{
		MetadataFirstSequenceNumber:    first.seq,
		MetadataFirstSubSequenceNumber: strconv.FormatInt(first.sub, 10),
		MetadataLastSequenceNumber:     last.seq,
		MetadataLastSubSequenceNumber:  strconv.FormatInt(last.sub, 10),
		MetadataRecords:                strconv.Itoa(records),
	}
}
