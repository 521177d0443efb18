package kpl

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
	aggpb "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"github.com/golang/protobuf/proto"
)

// TestAwslabsGoDeaggregatorDecodesOurAggregates decodes aggregates encoded
// here with awslabs' Go deaggregator. That deaggregator drops explicit hash
// keys, so the test also unmarshals the protobuf with its generated types
// (golang/protobuf) to check the explicit hash keys.
func TestAwslabsGoDeaggregatorDecodesOurAggregates(t *testing.T) {
	for name, records := range compatCases() {
		t.Run(name, func(t *testing.T) {
			enc := encodeHere(records)
			got, err := deaggregator.DeaggregateRecords([]types.Record{{
				PartitionKey:   aws.String("outer"),
				SequenceNumber: aws.String("1"),
				Data:           enc,
			}})
			if err != nil {
				t.Fatalf("awslabs deaggregator: %v", err)
			}
			if len(got) != len(records) {
				t.Fatalf("awslabs deaggregator returned %d records, want %d", len(got), len(records))
			}
			for i, r := range records {
				if aws.ToString(got[i].PartitionKey) != r.PartitionKey || !bytes.Equal(got[i].Data, r.Data) {
					t.Fatalf("awslabs record %d = {%q, %d bytes}, want {%q, %d bytes}",
						i, aws.ToString(got[i].PartitionKey), len(got[i].Data), r.PartitionKey, len(r.Data))
				}
			}

			var msg aggpb.AggregatedRecord
			if err := proto.Unmarshal(enc[MagicSize:len(enc)-DigestSize], &msg); err != nil {
				t.Fatalf("golang/protobuf unmarshal: %v", err)
			}
			for i, r := range records {
				pr := msg.Records[i]
				ehk := ""
				if pr.ExplicitHashKeyIndex != nil {
					ehk = msg.ExplicitHashKeyTable[*pr.ExplicitHashKeyIndex]
				}
				if ehk != r.ExplicitHashKey {
					t.Fatalf("record %d: explicit hash key %q, want %q", i, ehk, r.ExplicitHashKey)
				}
			}
		})
	}
}

// TestAwslabsGoEncodingDecodesHere encodes with awslabs' generated protobuf
// types (the Go module has no aggregator; its types marshal with
// golang/protobuf, independently of this package) and decodes here,
// including tags, which this package never writes.
func TestAwslabsGoEncodingDecodesHere(t *testing.T) {
	for name, records := range compatCases() {
		t.Run(name, func(t *testing.T) {
			var msg aggpb.AggregatedRecord
			pkIndex, ehkIndex := map[string]uint64{}, map[string]uint64{}
			for i, r := range records {
				pk, ok := pkIndex[r.PartitionKey]
				if !ok {
					pk = uint64(len(msg.PartitionKeyTable))
					pkIndex[r.PartitionKey] = pk
					msg.PartitionKeyTable = append(msg.PartitionKeyTable, r.PartitionKey)
				}
				rec := &aggpb.Record{PartitionKeyIndex: aws.Uint64(pk), Data: r.Data}
				if r.ExplicitHashKey != "" {
					ehk, ok := ehkIndex[r.ExplicitHashKey]
					if !ok {
						ehk = uint64(len(msg.ExplicitHashKeyTable))
						ehkIndex[r.ExplicitHashKey] = ehk
						msg.ExplicitHashKeyTable = append(msg.ExplicitHashKeyTable, r.ExplicitHashKey)
					}
					rec.ExplicitHashKeyIndex = aws.Uint64(ehk)
				}
				if i%2 == 0 {
					rec.Tags = []*aggpb.Tag{{Key: aws.String("tag"), Value: aws.String(name)}}
				}
				msg.Records = append(msg.Records, rec)
			}
			pb, err := proto.Marshal(&msg)
			if err != nil {
				t.Fatalf("golang/protobuf marshal: %v", err)
			}
			got, err := Deaggregate(nil, "outer", wrapAggregate(pb))
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			assertSameRecords(t, got, aggregatedRecords(records))
		})
	}
}
