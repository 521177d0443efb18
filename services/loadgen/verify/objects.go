package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/s3sink"
)

// ObjectsAPI is the part of the S3 client the object follower calls.
type ObjectsAPI interface {
	s3sink.ObjectGetter
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// NewObjectFollower follows the objects the S3 sink lands under prefix in bucket (such as the local pipeline's
// local-lake, records/) for the records of run runID. Each object is read once, when it first appears (objects are
// written whole and never replaced); its key is a Delivery's File and a record's place in it its Line, so order is
// checked within each object. Seen is when the object was found: end-to-end latency includes the sink's flush.
func NewObjectFollower(client ObjectsAPI, bucket, prefix, runID string) *Follower {
	return &Follower{src: &lakeObjects{client: client, bucket: bucket, prefix: prefix, runID: runID, done: map[string]bool{}},
		seen: map[string]bool{}}
}

// lakeObjects is the source of the sink's objects.
type lakeObjects struct {
	client                ObjectsAPI
	bucket, prefix, runID string
	// done holds the keys already read.
	done map[string]bool
}

// read implements source: the deliveries in the objects that appeared since the last call.
func (o *lakeObjects) read(now time.Time) ([]Delivery, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []Delivery
	pages := s3.NewListObjectsV2Paginator(o.client, &s3.ListObjectsV2Input{Bucket: &o.bucket, Prefix: &o.prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("verify: list s3://%s/%s: %w", o.bucket, o.prefix, err)
		}
		for _, c := range page.Contents {
			key := aws.ToString(c.Key)
			if _, sink := s3sink.FormatOfKey(key); o.done[key] || !sink {
				continue
			}
			obj, err := s3sink.ReadObject(ctx, o.client, o.bucket, key)
			if err != nil {
				return out, fmt.Errorf("verify: %w", err)
			}
			o.done[key] = true
			for i, r := range obj.Rows {
				if d, ok := deliveryOf(r.Data, o.runID, r.PartitionKey, r.ShardID, r.SequenceNumber, r.SubSequenceNumber); ok {
					d.File, d.Line, d.Seen = key, i+1, now
					out = append(out, d)
				}
			}
		}
	}
	return out, nil
}
