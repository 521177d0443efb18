package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/local/pipeline"
	"github.com/streamproc/streamproc/services/s3sink"
)

func TestRunLandsTheRecordsInTheLocalLake(t *testing.T) {
	// GIVEN the local pipeline with its default sink, S3 on the emulator
	r := startLocalRun(t, pipeline.Config{Consumers: 1, Sink: pipeline.SinkS3})
	if !strings.Contains(r.out.String(), "services/s3sink/cmd/lakecat -endpoint "+r.p.S3Endpoint()) ||
		!strings.Contains(r.out.String(), "-verify-s3 "+pipeline.LakeBucket+"/") {
		t.Errorf("banner does not say how to read the lake and verify against it:\n%s", r.out.String())
	}
	// WHEN the README's request is sent
	ack := postBlogRecord(t, r.p.ProducerURL())
	// THEN the record lands in an object of the lake's bucket, at the acknowledged position, within the flush age
	client := r.p.Emulators().S3Client()
	eventually.Succeeds(t, time.Minute, func() error {
		list, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(pipeline.LakeBucket),
			Prefix: aws.String(settings.DefaultS3Prefix + "/")})
		if err != nil {
			return err
		}
		for _, o := range list.Contents {
			obj, err := s3sink.ReadObject(t.Context(), client, pipeline.LakeBucket, aws.ToString(o.Key))
			if err != nil {
				return err
			}
			for _, row := range obj.Rows {
				if row.ShardID == ack.ShardID && row.SequenceNumber == ack.SequenceNumber && string(row.Data) == "This is a testing record" {
					return nil
				}
			}
		}
		return fmt.Errorf("the record at %s/%s is in none of the %d objects", ack.ShardID, ack.SequenceNumber, len(list.Contents))
	})
	// WHEN stopped THEN no process it started is left
	r.stopAndCheckNothingLeft(t)
}
