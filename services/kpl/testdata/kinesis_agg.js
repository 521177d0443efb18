// Encodes and decodes KPL aggregated records with awslabs' Node module
// aws-kinesis-agg, an implementation independent of this package, for the
// compatibility tests in compat_node_test.go.
//
// Usage: node kinesis_agg.js <node_modules dir>  (request on stdin, answer on stdout)
//
// Request:  {"encode": [[{"partitionKey", "explicitHashKey", "data"}...]...],
//            "decode": [{"partitionKey", "data"}...]}
// Answer:   {"encoded": [[{"partitionKey", "explicitHashKey", "data"}...]...],
//            "decoded": [{"error", "records": [{"partitionKey", "explicitHashKey", "data", "subSequenceNumber"}]}...]}
// Every "data" is base64. Each encode request yields the aggregates the module
// built for that list of records (one unless they exceed 1 MiB).
'use strict';
const path = require('path');
const agg = require(path.join(process.argv[2], 'aws-kinesis-agg'));

function encode(records) {
  const aggregates = [];
  const aggregator = new agg.RecordAggregator();
  aggregator.aggregateRecords(
    records.map((r) => ({
      partitionKey: r.partitionKey,
      explicitHashKey: r.explicitHashKey || undefined,
      data: Buffer.from(r.data, 'base64'),
    })),
    true,
    (err, encoded) => {
      if (err) throw err;
      aggregates.push({
        partitionKey: encoded.partitionKey,
        explicitHashKey: encoded.ExplicitHashKey || '',
        data: encoded.data.toString('base64'),
      });
    });
  return aggregates;
}

function decode(kinesisRecord) {
  let answer;
  agg.deaggregateSync(
    { partitionKey: kinesisRecord.partitionKey, data: kinesisRecord.data, sequenceNumber: '1' },
    true,
    (err, userRecords) => {
      if (err) {
        answer = { error: String(err.message || err), records: [] };
        return;
      }
      answer = {
        error: '',
        records: userRecords.map((u) => ({
          partitionKey: u.partitionKey,
          explicitHashKey: u.explicitPartitionKey || '',
          data: u.data,
          subSequenceNumber: u.subSequenceNumber === undefined ? -1 : Number(u.subSequenceNumber),
        })),
      };
    });
  return answer;
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const request = JSON.parse(input);
  const answer = {
    encoded: (request.encode || []).map(encode),
    decoded: (request.decode || []).map(decode),
  };
  process.stdout.write(JSON.stringify(answer));
});
