package kpl

import (
	"crypto/md5"
	"math/bits"
)

// Format-level constants of the aggregated record.
const (
	// MagicSize is the length of the magic prefix of an aggregated record.
	MagicSize = 4
	// DigestSize is the length of the MD5 digest that ends an aggregated record.
	DigestSize = md5.Size
	// EmptyAggregateSize is the encoded size of an aggregated record that
	// holds no user record: the overhead every aggregate pays.
	EmptyAggregateSize = MagicSize + DigestSize
)

// magic is the prefix that marks a Kinesis record as a KPL aggregate.
var magic = [MagicSize]byte{0xF3, 0x89, 0x9A, 0xC2}

// Protobuf tags (field number << 3 | wire type) of the fields this package writes.
const (
	tagPartitionKeyTable    = 1<<3 | wireBytes  // AggregatedRecord.partition_key_table
	tagExplicitHashKeyTable = 2<<3 | wireBytes  // AggregatedRecord.explicit_hash_key_table
	tagRecord               = 3<<3 | wireBytes  // AggregatedRecord.records
	tagPartitionKeyIndex    = 1<<3 | wireVarint // Record.partition_key_index
	tagExplicitHashKeyIndex = 2<<3 | wireVarint // Record.explicit_hash_key_index
	tagData                 = 3<<3 | wireBytes  // Record.data
)

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// Aggregator builds one KPL aggregated record from user records.
//
// Add copies the record's data into the Aggregator's own buffer, so the
// caller may reuse its data slice as soon as Add returns; partition and
// explicit hash keys are retained as the strings given (strings are
// immutable). Key tables are de-duplicated: a key used by many records is
// stored once. After Reset the buffers and key maps are kept and reused, so
// a warm Aggregator allocates nothing per record.
//
// The zero value is an empty Aggregator ready to use. An Aggregator is not
// safe for concurrent use.
type Aggregator struct {
	partitionKeys    keyTable
	explicitHashKeys keyTable
	records          []byte // encoded AggregatedRecord.records fields, in order
	count            int
}

// keyTable is one de-duplicated key table, kept already encoded.
type keyTable struct {
	index   map[string]uint64 // key -> position in the table
	encoded []byte            // encoded table fields (tag, length, key bytes)
	n       int               // number of keys

	// The last key looked up and the answer. A record's keys are looked up
	// by SizeIfAdded and then by Add, and consecutive records often share
	// a key, so this answers most lookups without hashing.
	last      string
	lastIndex uint64
	lastFound bool
	lastValid bool
}

// lookup returns the index of key in the table and whether it is there.
func (t *keyTable) lookup(key string) (uint64, bool) {
	if t.lastValid && key == t.last {
		return t.lastIndex, t.lastFound
	}
	i, ok := t.index[key]
	t.last, t.lastIndex, t.lastFound, t.lastValid = key, i, ok, true
	return i, ok
}

// add appends key, which must not be in the table, under tag and returns
// its index.
func (t *keyTable) add(tag byte, key string) uint64 {
	if t.index == nil {
		t.index = make(map[string]uint64)
	}
	i := uint64(t.n)
	t.index[key] = i
	t.n++
	t.last, t.lastIndex, t.lastFound, t.lastValid = key, i, true, true
	t.encoded = append(t.encoded, tag)
	t.encoded = appendVarint(t.encoded, uint64(len(key)))
	t.encoded = append(t.encoded, key...)
	return i
}

// reset empties the table and keeps its storage.
func (t *keyTable) reset() {
	clear(t.index)
	t.encoded = t.encoded[:0]
	t.n = 0
	t.last, t.lastValid = "", false
}

// maxRecordHeader bounds the bytes before a record's data: the record tag
// and length, the two key index fields and the data tag and length, each
// varint at most 10 bytes.
const maxRecordHeader = 1 + 10 + 1 + 10 + 1 + 10 + 1 + 10

// Add appends a user record. An empty explicitHashKey means the record has
// none. Add does not validate the keys or enforce any size limit: check
// [Aggregator.SizeIfAdded] first.
func (a *Aggregator) Add(partitionKey, explicitHashKey string, data []byte) {
	pk, ok := a.partitionKeys.lookup(partitionKey)
	if !ok {
		pk = a.partitionKeys.add(tagPartitionKeyTable, partitionKey)
	}
	var ehk uint64
	hasEHK := explicitHashKey != ""
	if hasEHK {
		if ehk, ok = a.explicitHashKeys.lookup(explicitHashKey); !ok {
			ehk = a.explicitHashKeys.add(tagExplicitHashKeyTable, explicitHashKey)
		}
	}
	// The header is built on the stack so that the buffer grows by two
	// appends per record rather than eight.
	var header [maxRecordHeader]byte
	h := header[:0]
	h = append(h, tagRecord)
	h = appendVarint(h, uint64(recordBodySize(pk, ehk, hasEHK, len(data))))
	h = append(h, tagPartitionKeyIndex)
	h = appendVarint(h, pk)
	if hasEHK {
		h = append(h, tagExplicitHashKeyIndex)
		h = appendVarint(h, ehk)
	}
	h = append(h, tagData)
	h = appendVarint(h, uint64(len(data)))
	a.records = append(a.records, h...)
	a.records = append(a.records, data...)
	a.count++
}

// SizeIfAdded returns the exact encoded size of the whole aggregated record
// (magic, protobuf and digest) if a record with these keys and dataLen bytes
// of data were added. It accounts for keys already in the tables and for the
// varint lengths, so a caller can keep an aggregate under a size limit
// without ever encoding it.
func (a *Aggregator) SizeIfAdded(partitionKey, explicitHashKey string, dataLen int) int {
	size := EmptyAggregateSize + len(a.partitionKeys.encoded) + len(a.explicitHashKeys.encoded) + len(a.records)
	pk, ok := a.partitionKeys.lookup(partitionKey)
	if !ok {
		pk = uint64(a.partitionKeys.n)
		size += fieldSize(len(partitionKey))
	}
	var ehk uint64
	hasEHK := explicitHashKey != ""
	if hasEHK {
		if ehk, ok = a.explicitHashKeys.lookup(explicitHashKey); !ok {
			ehk = uint64(a.explicitHashKeys.n)
			size += fieldSize(len(explicitHashKey))
		}
	}
	return size + fieldSize(recordBodySize(pk, ehk, hasEHK, dataLen))
}

// Size returns the encoded size of the aggregated record built so far, the
// number of bytes AppendEncoded appends: 0 when no record was added.
func (a *Aggregator) Size() int {
	if a.count == 0 {
		return 0
	}
	return EmptyAggregateSize + len(a.partitionKeys.encoded) + len(a.explicitHashKeys.encoded) + len(a.records)
}

// Count returns the number of user records added since the last Reset.
func (a *Aggregator) Count() int { return a.count }

// AppendEncoded appends the aggregated record (magic, protobuf, MD5) to dst
// and returns the extended slice. With no record added it appends nothing:
// there is nothing to send. The Aggregator is left unchanged; call Reset to
// start the next aggregate.
func (a *Aggregator) AppendEncoded(dst []byte) []byte {
	if a.count == 0 {
		return dst
	}
	size := a.Size()
	start := len(dst)
	if cap(dst)-start < size {
		grown := make([]byte, start, start+size)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, magic[:]...)
	dst = append(dst, a.partitionKeys.encoded...)
	dst = append(dst, a.explicitHashKeys.encoded...)
	dst = append(dst, a.records...)
	sum := md5.Sum(dst[start+MagicSize:])
	return append(dst, sum[:]...)
}

// Reset empties the Aggregator for the next aggregate and keeps its buffers.
func (a *Aggregator) Reset() {
	a.partitionKeys.reset()
	a.explicitHashKeys.reset()
	a.records = a.records[:0]
	a.count = 0
}

// recordBodySize is the encoded size of one Record message (without its own
// tag and length prefix).
func recordBodySize(pk, ehk uint64, hasEHK bool, dataLen int) int {
	n := 1 + varintSize(pk) + fieldSize(dataLen)
	if hasEHK {
		n += 1 + varintSize(ehk)
	}
	return n
}

// fieldSize is the encoded size of a length-delimited field with a one-byte
// tag and n bytes of payload.
func fieldSize(n int) int { return 1 + varintSize(uint64(n)) + n }

// varintSize is the number of bytes of the protobuf varint encoding of v.
func varintSize(v uint64) int {
	// 1 + floor(bitlen/7), with bitlen(0) counted as 1.
	return int(9*uint32(bits.Len64(v|1))+64) / 64
}

// appendVarint appends the protobuf varint encoding of v.
func appendVarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
