// Package kcl is a Kinesis consumer library compatible with the Java KCL 2.x lease table: workers share the shards of
// a stream through leases in a DynamoDB table, read them by enhanced fan-out (SubscribeToShard) or by polling
// (GetRecords), deaggregate KPL records, and hand user records to a Processor with the KCL's lifecycle.
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
// see the examples. The lease table is the Java KCL's: create it with the stack (partition key leaseKey, string),
// or set Config.CreateLeaseTable for local runs. Config documents every other setting and its default.
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
// # Metrics and logs
//
// Config.Metrics (a telemetry.Recorder, such as *telemetry.Metrics for CloudWatch EMF) receives the metrics named
// Metric...; Config.Logger the worker's structured logs, with the stream, worker id and shard id as keys.
package kcl
