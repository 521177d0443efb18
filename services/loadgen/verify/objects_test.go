package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/loadgen/load"
	"github.com/streamproc/streamproc/services/s3sink"
)

// noCheckpoint is a checkpointer with nothing behind it: the objects are what this test reads.
type noCheckpoint struct{}

func (noCheckpoint) Checkpoint(context.Context) error                  { return nil }
func (noCheckpoint) CheckpointAt(context.Context, string, int64) error { return nil }

func TestObjectFollowerReadsTheSinksObjects(t *testing.T) {
	for _, format := range []s3sink.Format{s3sink.FormatParquet, s3sink.FormatNDJSON} {
		t.Run(string(format), func(t *testing.T) {
			// GIVEN a bucket where the S3 sink landed two objects: records of run r (key a, 1 to 3) and of another run
			e := emulatortest.StartForTest(t, emulator.Options{S3: true})
			client := e.S3Client()
			ctx := t.Context()
			if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: new("lake")}); err != nil {
				t.Fatal(err)
			}
			newProcessor, err := s3sink.NewProcessorFunc(s3sink.Config{Bucket: "lake", Prefix: "records", Format: format,
				MaxObjectBytes: 300, SpillDir: t.TempDir()}, client)
			if err != nil {
				t.Fatal(err)
			}
			p := newProcessor()
			payloads := []load.Payload{{Run: "r", ID: "r1", Key: "a", Seq: 1}, {Run: "r", ID: "r2", Key: "a", Seq: 2},
				{Run: "other", ID: "other1", Key: "a", Seq: 1}, {Run: "r", ID: "r3", Key: "a", Seq: 3}}
			var records []kcl.Record
			for i, pl := range payloads {
				b, _ := json.Marshal(pl)
				records = append(records, kcl.Record{ShardID: "shardId-000000000000", SequenceNumber: fmt.Sprintf("4960%052d", i),
					PartitionKey: "a", Data: b, ApproximateArrivalTimestamp: time.Now()})
			}
			if err := p.Initialize(ctx, kcl.InitializeInput{ShardID: "shardId-000000000000"}); err != nil {
				t.Fatal(err)
			}
			if err := p.ProcessRecords(ctx, kcl.ProcessRecordsInput{Records: records, Checkpointer: noCheckpoint{}}); err != nil {
				t.Fatal(err)
			}
			if err := p.ShutdownRequested(ctx, kcl.ShutdownRequestedInput{Checkpointer: noCheckpoint{}}); err != nil {
				t.Fatal(err)
			}
			// WHEN the follower polls twice (the second finds nothing new)
			f := NewObjectFollower(client, "lake", "records/", "r")
			for range 2 {
				if err := f.Poll(); err != nil {
					t.Fatal(err)
				}
			}
			// THEN it found run r's three records once each, by object and place, and the check passes
			ds := f.Deliveries()
			if len(ds) != 3 {
				t.Fatalf("%d deliveries %+v, want run r's 3", len(ds), ds)
			}
			for _, d := range ds {
				if d.File == "" || d.Line < 1 || d.ShardID != "shardId-000000000000" || d.PartitionKey != "a" {
					t.Errorf("delivery %+v: want its object, place, shard and key", d)
				}
			}
			acked := []load.Acked{{ID: "r1", Key: "a", Seq: 1}, {ID: "r2", Key: "a", Seq: 2}, {ID: "r3", Key: "a", Seq: 3}}
			if r := Check(acked, ds); !r.OK() || r.DuplicatedRecords != 0 || r.Delivered != 3 {
				t.Errorf("report %s, want all 3 delivered once, in order", r)
			}
		})
	}
}
