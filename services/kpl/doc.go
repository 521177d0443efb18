// Package kpl implements the Kinesis Producer Library (KPL) aggregated-record
// format and a shard-aware batching producer built on it.
//
// # Producing
//
//	producer, err := kpl.New(kpl.Config{StreamName: "orders"}, kinesis.NewFromConfig(awsCfg))
//	if err != nil { ... }
//	if err := producer.Start(ctx); err != nil { ... } // reads the shard map
//	defer producer.Close(ctx)                          // flushes what is buffered
//
//	// Wait for Kinesis:
//	res, err := producer.Put(ctx, kpl.Record{PartitionKey: "customer-42", Data: body})
//	// or not: the callback gets the outcome.
//	err = producer.PutAsync(kpl.Record{Data: body}, func(r kpl.Result) { ... r.Err ... })
//
// Records are aggregated per shard (the producer predicts each record's shard
// from the stream's shard map, as the KPL does), batched into PutRecords calls,
// rate-limited per shard, retried per entry, and expired after RecordTTL. The
// buffer is bounded (MaxBufferedBytes): when it is full, PutAsync refuses with
// ErrBufferFull at once instead of growing, so a service can answer 503 and
// its memory stays flat. A record without a partition key is put where the
// producer chooses, with one short key per aggregate rather than a random one
// per record. Config documents every setting and its default; Config.Metrics
// (a telemetry.Recorder) receives the KPL's metric names.
//
// # Aggregated record format
//
// An aggregated record packs many user records into one Kinesis record:
//
//	magic (F3 89 9A C2) | protobuf AggregatedRecord | MD5 of the protobuf bytes (16)
//
// with the protobuf messages
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag { required string key = 1; optional string value = 2; }
//
// [Aggregator] encodes it and [Deaggregate] decodes it. Both are written by
// hand rather than with a protobuf library: encoding allocates nothing per
// record once an Aggregator is warm, and decoding allocates at most once per
// aggregate (the records' data alias the input). Tags are never written and
// are skipped when read, as the KPL and KCL do.
//
// The format is byte-compatible with the KPL, the KCL and awslabs'
// kinesis-aggregation libraries; the tests prove it against the Node module
// aws-kinesis-agg and the Go module github.com/awslabs/kinesis-aggregation.
package kpl
