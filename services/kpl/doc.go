// Package kpl implements the Kinesis Producer Library (KPL) aggregated-record
// format and a shard-aware batching producer built on it.
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
