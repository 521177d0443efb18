// A record processor written with the Node KCL (npm aws-kcl), as its users write one, for the host's tests: it runs
// unchanged under the Go host, where the Java MultiLangDaemon would run it.
//
// RECORDS_FILE (optional) gets one JSON line per record processed: shard, sequence and sub-sequence numbers,
// partition key, data, pid. Without it the records are only counted (the benchmark). EVENTS_FILE (optional) gets
// one JSON line per lifecycle event. Every batch is checkpointed once processed (checkpoint with no position: every
// record delivered so far), the shard's end is checkpointed, and so is a requested shutdown.
//
// PROCESSOR_VERSION=1 makes it a processor of the library's first version: one shutdown(input) with reason
// TERMINATE or ZOMBIE instead of shardEnded and leaseLost; aws-kcl then translates the daemon's messages itself.
'use strict';

const fs = require('fs');
const kcl = require('aws-kcl');

const recordsFile = process.env.RECORDS_FILE;
const eventsFile = process.env.EVENTS_FILE;
let shardId = null;
let count = 0;

function append(path, obj) {
  if (path) {
    fs.appendFileSync(path, JSON.stringify(obj) + '\n');
  }
}

function event(name, fields) {
  append(eventsFile, Object.assign({event: name, shard: shardId, pid: process.pid}, fields || {}));
}

function checkpoint(checkpointer, done) {
  checkpointer.checkpoint(function (err) {
    event('checkpoint', {sequenceNumber: null, subSequenceNumber: null, error: err || null, records: count});
    done();
  });
}

const processor = {
  initialize: function (input, completeCallback) {
    shardId = input.shardId;
    event('initialize', {sequenceNumber: input.sequenceNumber, subSequenceNumber: input.subSequenceNumber});
    completeCallback();
  },

  processRecords: function (input, completeCallback) {
    if (!input || !input.records || input.records.length === 0) {
      completeCallback();
      return;
    }
    if (recordsFile) {
      const lines = input.records.map(function (r) {
        return JSON.stringify({
          shard: shardId, seq: r.sequenceNumber, sub: r.subSequenceNumber, key: r.partitionKey,
          data: Buffer.from(r.data, 'base64').toString('utf8'), arrival: r.approximateArrivalTimestamp, pid: process.pid,
        });
      });
      fs.appendFileSync(recordsFile, lines.join('\n') + '\n');
    }
    count += input.records.length;
    checkpoint(input.checkpointer, completeCallback);
  },

  shutdownRequested: function (input, completeCallback) {
    event('shutdownRequested');
    checkpoint(input.checkpointer, completeCallback);
  },
};

if (process.env.PROCESSOR_VERSION === '1') {
  processor.shutdown = function (input, completeCallback) {
    event('shutdown', {reason: input.reason});
    if (input.reason === 'TERMINATE') {
      checkpoint(input.checkpointer, completeCallback);
      return;
    }
    completeCallback();
  };
} else {
  processor.leaseLost = function (input, completeCallback) {
    event('leaseLost');
    completeCallback();
  };
  processor.shardEnded = function (input, completeCallback) {
    event('shardEnded');
    checkpoint(input.checkpointer, completeCallback);
  };
}

kcl(processor).run();
