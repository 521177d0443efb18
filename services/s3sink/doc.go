// Package s3sink is a kcl.Processor that lands a stream in S3: each shard's records are batched into objects
// (Parquet or gzip NDJSON), flushed by size, by age, and when the shard ends, the lease is lost or the worker shuts
// down, so that every record the stream holds ends up in exactly one object, across crashes, resharding and
// rebalancing.
//
// # Objects
//
// An object holds a run of one shard's records, in shard order. Its key depends only on its first record:
//
//	<prefix>/dt=YYYY-MM-DD/hr=HH/<shardId>-<sequenceNumber>-<subSequenceNumber>.parquet (or .json.gz)
//
// where the date and hour are the first record's approximate arrival time in UTC (the partitions Athena projects).
// Its metadata (x-amz-meta-last-sequence-number, -last-sub-sequence-number) names its last record. Parquet
// columns: shard_id, sequence_number, sub_sequence_number, partition_key, approximate_arrival_timestamp (millisecond
// timestamp, UTC) and data (binary), zstd-compressed; NDJSON lines carry the same fields, data in base64.
//
// # Exactly once
//
// A processor builds one object at a time. It uploads the object on the condition that no object is at its key
// (If-None-Match: *), checkpoints at the object's last record right after, and starts the next object only once
// that checkpoint is written. So, for each shard:
//
//  1. At most one object lies past the checkpoint, and it starts at the first record after the checkpoint. An
//     owner starts an object only after its own checkpoint C at the end of the previous one; checkpoints are
//     conditional on holding the lease, so once another worker took the lease no owner before it writes another
//     checkpoint, and the new owner starts from that same C. Any object started past C is therefore named by the
//     first record after C: all owners, old and new, write that object to the same key.
//  2. Conditional writes let only the first upload to that key land. Every other (a predecessor's upload held in
//     flight while it lost its lease, its upload when the lease was lost, an earlier attempt whose answer was
//     lost, the successor's own) is refused with 412 and changes nothing. So one object at most starts there.
//  3. A new owner (after a crash between upload and checkpoint, a lease lost with an upload in flight, or a
//     restart) looks the key up before it writes, and an upload refused with 412 looks it up too. It adopts the
//     object it finds: it checkpoints at the last record the metadata names (skipping the records up to it as the
//     stream delivers them, or, when it had encoded more than the object holds, restarting from the new checkpoint
//     so that the stream gives the rest again) and goes on after it, instead of writing those records a second time.
//
// Hence no record is in two objects: objects of a shard start only right after a checkpoint, and a checkpoint
// moves only to the end of an object in S3. And none is skipped: a checkpoint never moves past a record that is not
// in an object in S3, and an S3 error never checkpoints (uploads retry with backoff; after Config.UploadAttempts the
// worker retries the call, and after kcl.Config.MaxProcessAttempts another worker takes over). A shard's children are
// read only once it is checkpointed at its end, so records of one partition key land in order across resharding.
// Objects are never partial: each is one PutObject of a complete file. KPL user records read from a shard whose hash
// key range does not hold them are dropped by default, as the Java KCL drops them, because the project's KPL puts
// them again to the right shard (Config.KeepRecordsOutsideShardRange).
//
// # Memory and the spill file
//
// An object is encoded into a spill file in Config.SpillDir (a task volume) as its records come, and the finished
// file is uploaded with one conditional PutObject. Memory stays at the encoders' buffers (Parquet pages are buffered
// in files too) whatever Config.MaxObjectBytes is, and a record larger than it makes an object of its own. A spill
// file, rather than a multipart upload streamed while the object grows, because the metadata that names the last
// record must be given when an upload starts and that record is known only at the flush; and one PutObject of a
// file is atomic, retried from the start by seeking, and leaves no incomplete multipart uploads to abort.
//
// # Metrics
//
// Config.Metrics receives ObjectsWritten, BytesWritten, RecordsWritten, UploadLatency, FlushReason (by Reason),
// ObjectsAdopted and UploadErrors.
package s3sink
