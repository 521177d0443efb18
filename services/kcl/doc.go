// Package kcl is a Kinesis consumer library compatible with the Java KCL 2.x lease table: workers share the shards of
// a stream through leases in a DynamoDB table, read them by enhanced fan-out (SubscribeToShard) or by polling
// (GetRecords), deaggregate KPL records, and hand user records to a Processor with the KCL's lifecycle.
//
// Delivery is at-least-once: a checkpoint never moves past a record that was not processed, a failing processor is
// retried with the same records, and after too many attempts the worker gives the lease up rather than skip records.
// A child shard is read only after every parent's lease is checkpointed at SHARD_END, so records of one partition
// key arrive in order across resharding.
package kcl
