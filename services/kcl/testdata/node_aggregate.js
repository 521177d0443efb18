// Aggregates user records with awslabs' Node module aws-kinesis-agg, for the kcl test that checks the consumer
// deaggregates records produced by another KPL implementation.
//
// Usage: node node_aggregate.js <node_modules dir>
// stdin:  [{"partitionKey": "...", "data": "<base64>"}...]
// stdout: [{"partitionKey": "...", "explicitHashKey": "...", "data": "<base64>"}...]  (the aggregated Kinesis records)
'use strict';
const path = require('path');
const agg = require(path.join(process.argv[2], 'aws-kinesis-agg'));

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const records = JSON.parse(input).map((r) => ({ partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') }));
  const out = [];
  const aggregator = new agg.RecordAggregator();
  aggregator.aggregateRecords(records, true, (err, encoded) => {
    if (err) throw err;
    out.push({ partitionKey: encoded.partitionKey, explicitHashKey: encoded.ExplicitHashKey || '', data: encoded.data.toString('base64') });
  });
  process.stdout.write(JSON.stringify(out));
});
