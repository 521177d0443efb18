package kpl

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// compatRecord is one user record of a compatibility test case.
type compatRecord struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey"`
	Data            []byte `json:"data"`
}

// compatCases are the record sets the compatibility tests encode and decode
// with other implementations.
//
// Partition and explicit hash keys are never integers below 2^32: the Node
// module builds its key tables with Object.keys, which lists such keys first
// and so mismatches the indexes it assigned (a bug of that module, not of the
// format). Real explicit hash keys are 128-bit numbers, above that range.
func compatCases() map[string][]compatRecord {
	rng := rand.New(rand.NewPCG(7, 11))
	randomData := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	hashKey := func(i int) string { return fmt.Sprintf("%d%038d", 1+i%3, i*7919) } // 39 digits, < 2^128
	cases := map[string][]compatRecord{
		"one record":     {{"only-key", "", []byte("hello, kinesis")}},
		"unicode keys":   {{"clé-ü-😀", "", []byte("a")}, {"日本語のキー", hashKey(1), []byte("b")}, {"clé-ü-😀", "", []byte("c")}},
		"empty data":     {{"k", "", []byte{}}, {"k", hashKey(2), []byte("x")}},
		"long key":       {{strings.Repeat("p", 256), hashKey(3), randomData(300)}},
		"large record":   {{"big", "", randomData(200_000)}, {"small", "", randomData(10)}},
		"varint lengths": {{"k", "", randomData(127)}, {"k", "", randomData(128)}, {"k", "", randomData(16383)}, {"k", "", randomData(16384)}},
	}
	shared := make([]compatRecord, 500)
	for i := range shared {
		shared[i] = compatRecord{"shared-key", "", randomData(100)}
	}
	cases["500 records one key"] = shared
	distinct := make([]compatRecord, 400)
	for i := range distinct {
		ehk := ""
		if i%3 != 0 {
			ehk = hashKey(i % 150)
		}
		distinct[i] = compatRecord{fmt.Sprintf("user-%d", i%200), ehk, randomData(rng.IntN(300))}
	}
	cases["400 records 200 keys 150 hash keys"] = distinct
	return cases
}

// encodeHere aggregates records with this package.
func encodeHere(records []compatRecord) []byte {
	var a Aggregator
	for _, r := range records {
		a.Add(r.PartitionKey, r.ExplicitHashKey, r.Data)
	}
	return a.AppendEncoded(nil)
}

// aggregatedRecords is what a decoder is expected to return for records.
func aggregatedRecords(records []compatRecord) []UserRecord {
	out := make([]UserRecord, len(records))
	for i, r := range records {
		out[i] = UserRecord{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data,
			SubSequenceNumber: int64(i), Aggregated: true}
	}
	return out
}
