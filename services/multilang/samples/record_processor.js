// A MultiLang record processor in Node.js, written with the Node KCL (npm install aws-kcl) exactly as for the Java
// MultiLangDaemon; the Go consumer runs it unchanged (PROCESSOR=multilang, MULTILANG_COMMAND="node
// record_processor.js"), one process per shard, with no JVM. It writes each record to stderr as one JSON line, which
// the consumer logs tagged with the shard, and checkpoints after every batch, at the shard's end and when the
// consumer shuts down. Replace handle() with your own processing.
'use strict';

const kcl = require('aws-kcl');

let shardId = null;

function handle(record) {
  process.stderr.write(JSON.stringify({
    shard_id: shardId, partition_key: record.partitionKey, sequence_number: record.sequenceNumber,
    sub_sequence_number: record.subSequenceNumber, data: Buffer.from(record.data, 'base64').toString('utf8'),
  }) + '\n');
}

function checkpoint(checkpointer, done) {
  checkpointer.checkpoint(function (err) {
    if (err) {
      // ShutdownException: the lease is another worker's now. ThrottlingException: retry later.
      process.stderr.write('checkpoint refused: ' + err + '\n');
    }
    done();
  });
}

kcl({
  initialize: function (input, done) {
    shardId = input.shardId;
    done();
  },
  processRecords: function (input, done) {
    if (!input.records || input.records.length === 0) {
      done();
      return;
    }
    input.records.forEach(handle);
    checkpoint(input.checkpointer, done);
  },
  leaseLost: function (input, done) {
    done(); // another worker has the shard: nothing to checkpoint
  },
  shardEnded: function (input, done) {
    checkpoint(input.checkpointer, done); // records SHARD_END, so the shard's children are read
  },
  shutdownRequested: function (input, done) {
    checkpoint(input.checkpointer, done);
  },
}).run();
