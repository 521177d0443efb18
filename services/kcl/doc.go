// Package kcl is a Kinesis consumer library compatible with the lease tables of the Java KCL 2.x and 3.x: workers
// share the shards of a stream through leases in a DynamoDB table, read them by enhanced fan-out (SubscribeToShard)
// or by polling (GetRecords), deaggregate KPL records, and hand user records to a Processor with the KCL's lifecycle.
//
// # Using it
//
// A worker needs a stream, a lease table name (one per application; the Java KCL names it after the
// application), an id unique among the application's workers, and a Processor per shard:
//
//	worker, err := kcl.New(kcl.Config{
//		StreamName:     "orders",
//		LeaseTableName: "orders-app",
//		WorkerID:       hostname,
//		NewProcessor: kcl.ProcessorFunc(func(ctx context.Context, records []kcl.Record) error {
//			for _, r := range records {
//				// r.Data, r.PartitionKey, r.ShardID, r.SequenceNumber, r.ApproximateArrivalTimestamp
//			}
//			return nil // the batch is checkpointed; an error gives the same batch again
//		}),
//	}, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg))
//	if err != nil { ... }
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err = worker.Run(ctx) // until SIGTERM, then a graceful stop: checkpoints, leases released
//
// ProcessorFunc covers the common case: one function per batch, a checkpoint after each. A processor that keeps
// state, checkpoints less often or must act when it loses its shard implements Processor (Initialize,
// ProcessRecords, LeaseLost, ShardEnded, ShutdownRequested) and checkpoints through the Checkpointer it is given;
// see the examples. The lease table is the Java KCL's: create it with the stack (partition key leaseKey, string,
// and the LeaseOwnerToLeaseKeyIndex), or set Config.CreateLeaseTable for local runs. Config documents every other
// setting and its default.
//
// # Guarantees
//
// Delivery is at-least-once: a checkpoint never moves past a record that was not processed, a failing processor is
// retried with the same records, and after too many attempts the worker gives the lease up rather than skip records.
// A processor that lost what it was given (a child process that died: package multilang) returns an error wrapping
// ErrRestartFromCheckpoint, and a new processor is given every record after the checkpoint again. A child shard is
// read only after every parent's lease is checkpointed at SHARD_END, so records of one partition key arrive in order
// across resharding. Cancelling Run's context stops gracefully within Config.ShutdownTimeout.
//
// # Sharing the shards
//
// Each worker measures the throughput of its leases (KB/s, smoothed) and records it on the lease at each renewal,
// as the Java KCL 3.x does (throughputKBps). Workers take new, released and expired leases up to their share of the
// load, and a worker below the band around the mean load (Config.RebalanceThresholdPercent) moves one lease at a time
// from a busier worker, so that the load evens out; while no throughput is known, and with BalancingCount, they
// balance lease counts. A lease moves by graceful hand-off, as in the Java KCL 3.x: the taker marks it
// (checkpointOwner: the old owner, leaseOwner: the taker), the old owner finishes its batch, its processor
// checkpoints in ShutdownRequested, and it lets go; the taker reads from that checkpoint, with no duplicate and no
// failover wait. A hand-off not finished within Config.HandoffTimeout falls back to a take.
//
// The Java KCL 3.x's items are understood and kept: attributes this package does not know stay on every write (all
// writes are UpdateItems of named attributes, or PutItems of new items), items of other entity types (worker
// metrics, coordinator state) are neither read nor written, and the LeaseOwnerToLeaseKeyIndex, where the table has
// it, finds the leases assigned to a worker.
//
// # Metrics and logs
//
// Config.Metrics (a telemetry.Recorder, such as *telemetry.Metrics for CloudWatch EMF) receives the metrics named
// Metric...; Config.Logger the worker's structured logs, with the stream, worker id and shard id as keys.
package kcl
