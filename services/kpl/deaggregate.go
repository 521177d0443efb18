package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Errors returned by Deaggregate, checked with errors.Is.
var (
	// ErrChecksum means a record carries the aggregate magic but its MD5
	// digest does not match its protobuf bytes: it is corrupt.
	ErrChecksum = errors.New("kpl: aggregated record checksum mismatch")
	// ErrMalformed means an aggregate's digest is right but its protobuf is
	// not a valid AggregatedRecord: truncated, a bad field, a missing
	// required field or a key index outside its table.
	ErrMalformed = errors.New("kpl: malformed aggregated record")
)

// UserRecord is one user record read from a Kinesis record.
type UserRecord struct {
	// PartitionKey is the record's own partition key; for a record that was
	// not aggregated, the Kinesis record's partition key.
	PartitionKey string
	// ExplicitHashKey is the record's explicit hash key, empty if it has none.
	ExplicitHashKey string
	// Data is the record's payload. It aliases the Kinesis record's data.
	Data []byte
	// SubSequenceNumber is the record's position in its aggregate, from 0;
	// 0 for a record that was not aggregated.
	SubSequenceNumber int64
	// Aggregated tells whether the record came out of a KPL aggregate.
	Aggregated bool
}

// IsAggregated reports whether data is framed as a KPL aggregated record: it
// starts with the magic and is long enough to hold the MD5 digest. It does
// not check the digest.
func IsAggregated(data []byte) bool {
	return len(data) >= EmptyAggregateSize && bytes.Equal(data[:MagicSize], magic[:])
}

// Deaggregate appends to dst the user records of the Kinesis record data
// whose partition key is partitionKey, and returns the extended slice.
//
// Data that is not framed as an aggregate (see [IsAggregated]) passes through
// as one record with the given partition key and Aggregated false. An
// aggregate yields its records in order, with SubSequenceNumber 0, 1, ...;
// an aggregate with no records yields none.
//
// The records' Data are sub-slices of data (capacity-limited, so appending to
// one never overwrites another): data must not be modified while they are in
// use. Keys are sub-strings of one string copied per aggregate, so the only
// allocations are that string and dst's growth; reuse dst across calls.
//
// A corrupt aggregate returns an error wrapping ErrChecksum or ErrMalformed,
// and dst with nothing appended. Deaggregate never panics on any input.
func Deaggregate(dst []UserRecord, partitionKey string, data []byte) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return append(dst, UserRecord{PartitionKey: partitionKey, Data: data}), nil
	}
	body := data[MagicSize : len(data)-DigestSize]
	if sum := md5.Sum(body); !bytes.Equal(sum[:], data[len(data)-DigestSize:]) {
		return dst, fmt.Errorf("%w: digest %x, computed %x", ErrChecksum, data[len(data)-DigestSize:], sum)
	}
	out, err := decodeAggregate(dst, body)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// decodeAggregate parses the AggregatedRecord protobuf body and appends its
// records to dst. Fields may come in any order and repeat, as protobuf
// allows, so it makes two passes: the first (scanAggregate) validates the
// top-level fields, locates the key tables and counts the records; the second
// (appendRecords) decodes the records, whose keys it takes from one string
// built per aggregate (newAggregateKeys).
func decodeAggregate(dst []UserRecord, body []byte) ([]UserRecord, error) {
	if uint64(len(body)) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d bytes, more than 4 GiB", ErrMalformed, len(body))
	}
	layout, err := scanAggregate(body)
	if err != nil {
		return nil, err
	}
	if layout.records == 0 {
		return dst, nil
	}
	return appendRecords(dst, body, &layout, newAggregateKeys(body, &layout))
}

// aggregateLayout is what the first pass learns of an AggregatedRecord body.
type aggregateLayout struct {
	// keysLo and keysHi bound the smallest region of the body holding every
	// key-table entry's bytes.
	keysLo, keysHi int
	// firstKey and firstRecord are the offsets of the first key-table field
	// and of the first records field, -1 when there is none.
	firstKey, firstRecord int
	// pks, ehks and records count the partition keys, the explicit hash keys
	// and the records.
	pks, ehks, records int
}

// scanAggregate is the first pass over an AggregatedRecord body: it checks
// every top-level field's key and length (skipping unknown fields), counts
// the entries of both key tables and the records, and locates them.
func scanAggregate(body []byte) (aggregateLayout, error) {
	l := aggregateLayout{keysLo: len(body), firstKey: -1, firstRecord: -1}
	for i := 0; i < len(body); {
		fieldStart := i
		num, wire, next := readTag(body, i)
		if next < 0 {
			return l, fmt.Errorf("field at byte %d: %w", i, errBadKey)
		}
		i = next
		switch num {
		case 1, 2: // partition_key_table, explicit_hash_key_table
			if wire != wireBytes {
				return l, fmt.Errorf("%w: key table field %d has wire type %d", ErrMalformed, num, wire)
			}
			start, end := readBytes(body, i)
			if end < 0 {
				return l, fmt.Errorf("key table field %d: %w", num, errTruncated)
			}
			if num == 1 {
				l.pks++
			} else {
				l.ehks++
			}
			if l.firstKey < 0 {
				l.firstKey = fieldStart
			}
			l.keysLo, l.keysHi = min(l.keysLo, start), max(l.keysHi, end)
			i = end
		case 3: // records
			if wire != wireBytes {
				return l, fmt.Errorf("%w: records field has wire type %d", ErrMalformed, wire)
			}
			_, end := readBytes(body, i)
			if end < 0 {
				return l, fmt.Errorf("record %d: %w", l.records, errTruncated)
			}
			if l.firstRecord < 0 {
				l.firstRecord = fieldStart
			}
			l.records++
			i = end
		default:
			var err error
			if i, err = skipField(body, i, num, wire, 0); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// aggregateKeys holds every key of one aggregate in one string, its only
// allocation: the bytes of the region of the body holding every key-table
// entry, followed by a little-endian (start, end) uint32 pair per partition
// key, then per explicit hash key, locating each key in that region.
type aggregateKeys struct {
	s string
	// pkSpans and ehkSpans are where the pairs of each table start in s.
	pkSpans, ehkSpans int
}

// newAggregateKeys builds the keys of the aggregate body laid out as l.
func newAggregateKeys(body []byte, l *aggregateLayout) aggregateKeys {
	lo, hi := l.keysLo, l.keysHi
	k := aggregateKeys{pkSpans: hi - lo, ehkSpans: hi - lo + 8*l.pks}
	if l.firstKey < 0 {
		return k
	}
	var b strings.Builder
	b.Grow(hi - lo + 8*(l.pks+l.ehks))
	b.Write(body[lo:hi])
	for _, table := range [2]struct {
		num   uint64
		count int
	}{{1, l.pks}, {2, l.ehks}} {
		if table.count == 0 {
			continue
		}
		// Every key entry lies in body[firstKey:hi]; the fields there were
		// validated by scanAggregate.
		for i := l.firstKey; i < hi; {
			num, wire, next := readTag(body, i)
			if num != 1 && num != 2 {
				i, _ = skipField(body, next, num, wire, 0)
				continue
			}
			start, end := readBytes(body, next)
			if num == table.num {
				var span [8]byte
				binary.LittleEndian.PutUint32(span[:4], uint32(start-lo))
				binary.LittleEndian.PutUint32(span[4:], uint32(end-lo))
				b.Write(span[:])
			}
			i = end
		}
	}
	k.s = b.String()
	return k
}

// appendRecords is the second pass over an aggregate body laid out as l: it
// decodes every records field, from the first on, checks its key indexes
// and appends it to dst with its keys and its data (a sub-slice of body).
func appendRecords(dst []UserRecord, body []byte, l *aggregateLayout, keys aggregateKeys) ([]UserRecord, error) {
	pks, ehks := uint64(l.pks), uint64(l.ehks)
	// key returns the key whose pair is the index-th of the table whose pairs
	// start at spans. A closure, not a method: the compiler inlines it (a
	// method of the same cost is over its budget).
	key := func(spans int, index uint64) string {
		at := spans + 8*int(index)
		return keys.s[le32(keys.s, at):le32(keys.s, at+4)]
	}
	dst = slices.Grow(dst, l.records)
	for i, n := l.firstRecord, int64(0); i < len(body); {
		var start, end int
		if body[i] == tagRecord {
			start, end = readBytes(body, i+1)
		} else {
			num, wire, next := readTag(body, i) // valid: checked by the first pass
			if num != 3 {
				i, _ = skipField(body, next, num, wire, 0)
				continue
			}
			start, end = readBytes(body, next)
		}
		i = end
		r, ok := decodeCanonicalRecord(body[start:end])
		if !ok {
			var err error
			if r, err = decodeRecord(body[start:end]); err != nil {
				return nil, fmt.Errorf("record %d: %w", n, err)
			}
		}
		if r.partitionKey >= pks || r.hasExplicitHashKey && r.explicitHashKey >= ehks {
			return nil, keyIndexError(n, r, pks, ehks)
		}
		dst = dst[:len(dst)+1] // capacity reserved above
		u := &dst[len(dst)-1]
		u.PartitionKey = key(keys.pkSpans, r.partitionKey)
		u.ExplicitHashKey = ""
		if r.hasExplicitHashKey {
			u.ExplicitHashKey = key(keys.ehkSpans, r.explicitHashKey)
		}
		u.Data = body[start+r.dataStart : start+r.dataEnd : start+r.dataEnd]
		u.SubSequenceNumber = n
		u.Aggregated = true
		n++
	}
	return dst, nil
}

// keyIndexError says which key index of record n lies outside its table.
func keyIndexError(n int64, r recordFields, pks, ehks uint64) error {
	if r.partitionKey >= pks {
		return fmt.Errorf("%w: record %d: partition key index %d, table has %d keys", ErrMalformed, n, r.partitionKey, pks)
	}
	return fmt.Errorf("%w: record %d: explicit hash key index %d, table has %d keys", ErrMalformed, n, r.explicitHashKey, ehks)
}

// recordFields are the decoded fields of one Record message; data is
// msg[dataStart:dataEnd].
type recordFields struct {
	partitionKey, explicitHashKey uint64
	hasExplicitHashKey            bool
	dataStart, dataEnd            int
}

// decodeCanonicalRecord decodes a Record laid out as every known encoder
// writes it: partition_key_index, optional explicit_hash_key_index, then
// data ending the message. It is the fast path of record decoding; ok false
// sends any other layout, or an error, to decodeRecord.
func decodeCanonicalRecord(msg []byte) (r recordFields, ok bool) {
	if len(msg) < 4 || msg[0] != tagPartitionKeyIndex {
		return r, false
	}
	i := 1
	if r.partitionKey, i = readVarint(msg, i); i < 0 || i >= len(msg) {
		return r, false
	}
	if msg[i] == tagExplicitHashKeyIndex {
		if r.explicitHashKey, i = readVarint(msg, i+1); i < 0 || i >= len(msg) {
			return r, false
		}
		r.hasExplicitHashKey = true
	}
	if msg[i] != tagData {
		return r, false
	}
	n, start := readVarint(msg, i+1)
	if start < 0 || n != uint64(len(msg)-start) {
		return r, false
	}
	r.dataStart, r.dataEnd = start, len(msg)
	return r, true
}

// decodeRecord parses one Record message in any layout. As protobuf
// specifies, the last occurrence of a repeated scalar field wins; tags are
// skipped.
func decodeRecord(msg []byte) (recordFields, error) {
	var r recordFields
	hasPartitionKey, hasData := false, false
	for i := 0; i < len(msg); {
		num, wire, next := readTag(msg, i)
		if next < 0 {
			return r, fmt.Errorf("field at byte %d: %w", i, errBadKey)
		}
		i = next
		switch num {
		case 1, 2: // partition_key_index, explicit_hash_key_index
			if wire != wireVarint {
				return r, fmt.Errorf("%w: key index field %d has wire type %d", ErrMalformed, num, wire)
			}
			v, next := readVarint(msg, i)
			if next < 0 {
				return r, fmt.Errorf("key index field %d: %w", num, errBadVarint)
			}
			i = next
			if num == 1 {
				r.partitionKey, hasPartitionKey = v, true
			} else {
				r.explicitHashKey, r.hasExplicitHashKey = v, true
			}
		case 3, 4: // data, tags
			if wire != wireBytes {
				return r, fmt.Errorf("%w: field %d has wire type %d", ErrMalformed, num, wire)
			}
			start, end := readBytes(msg, i)
			if end < 0 {
				return r, fmt.Errorf("field %d: %w", num, errTruncated)
			}
			if num == 3 {
				r.dataStart, r.dataEnd, hasData = start, end, true
			}
			i = end
		default:
			var err error
			if i, err = skipField(msg, i, num, wire, 0); err != nil {
				return r, err
			}
		}
	}
	switch {
	case !hasPartitionKey:
		return r, fmt.Errorf("%w: missing partition_key_index", ErrMalformed)
	case !hasData:
		return r, fmt.Errorf("%w: missing data", ErrMalformed)
	}
	return r, nil
}

// Errors of the protobuf primitives, all wrapping ErrMalformed.
var (
	errTruncated = fmt.Errorf("%w: field runs past the end of its message", ErrMalformed)
	errBadVarint = fmt.Errorf("%w: varint truncated or longer than 64 bits", ErrMalformed)
	errBadKey    = fmt.Errorf("%w: field key truncated or with field number 0 or over 2^29-1", ErrMalformed)
)

// The protobuf primitives below return a negative index instead of an error
// so that their common one-byte cases inline into the decoding loops.

// readVarint decodes the varint at b[i:] and returns it with the index that
// follows it, or a negative index if it is truncated or overflows 64 bits.
func readVarint(b []byte, i int) (uint64, int) {
	if uint(i) < uint(len(b)) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	return readVarintSlow(b, i)
}

//go:noinline // keeps readVarint small enough to inline
func readVarintSlow(b []byte, i int) (uint64, int) {
	if i < 0 {
		return 0, -1
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, -1
		}
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, -1
}

// readTag decodes the field key at b[i:] and returns the field number, the
// wire type and the index that follows, or a negative index if the key is
// truncated or its field number is 0 or above 2^29-1.
func readTag(b []byte, i int) (num uint64, wire byte, next int) {
	if uint(i) < uint(len(b)) && b[i] < 0x80 && b[i] >= 1<<3 {
		return uint64(b[i] >> 3), b[i] & 7, i + 1
	}
	return readTagSlow(b, i)
}

//go:noinline // keeps readTag small enough to inline
func readTagSlow(b []byte, i int) (num uint64, wire byte, next int) {
	v, next := readVarint(b, i)
	num, wire = v>>3, byte(v&7)
	if next < 0 || num == 0 || num > 1<<29-1 {
		return 0, 0, -1
	}
	return num, wire, next
}

// readBytes decodes the length prefix of a length-delimited field at b[i:]
// and returns where its payload starts and ends, or a negative end if the
// prefix is bad or the payload runs past the end of b.
func readBytes(b []byte, i int) (start, end int) {
	n, start := readVarint(b, i)
	if start < 0 || n > uint64(len(b)-start) {
		return 0, -1
	}
	return start, start + int(n)
}

// maxGroupDepth bounds the nesting of unknown groups skipped, so crafted
// input cannot exhaust the stack.
const maxGroupDepth = 32

// skipField skips the payload of an unknown field num of wire type wire at
// b[i:] and returns the index that follows it.
func skipField(b []byte, i int, num uint64, wire byte, depth int) (int, error) {
	switch wire {
	case wireVarint:
		_, next := readVarint(b, i)
		if next < 0 {
			return 0, fmt.Errorf("field %d: %w", num, errBadVarint)
		}
		return next, nil
	case wireFixed64, wireFixed32:
		n := 8
		if wire == wireFixed32 {
			n = 4
		}
		if len(b)-i < n {
			return 0, fmt.Errorf("field %d: %w", num, errTruncated)
		}
		return i + n, nil
	case wireBytes:
		_, end := readBytes(b, i)
		if end < 0 {
			return 0, fmt.Errorf("field %d: %w", num, errTruncated)
		}
		return end, nil
	case wireStartGroup:
		if depth >= maxGroupDepth {
			return 0, fmt.Errorf("%w: groups nested deeper than %d", ErrMalformed, maxGroupDepth)
		}
		for {
			n, w, next := readTag(b, i)
			if next < 0 {
				return 0, fmt.Errorf("in group %d: %w", num, errBadKey)
			}
			if w == wireEndGroup {
				if n != num {
					return 0, fmt.Errorf("%w: group %d ended by %d", ErrMalformed, num, n)
				}
				return next, nil
			}
			var err error
			if i, err = skipField(b, next, n, w, depth+1); err != nil {
				return 0, err
			}
		}
	default:
		return 0, fmt.Errorf("%w: field %d has invalid wire type %d", ErrMalformed, num, wire)
	}
}

// le32 decodes the little-endian uint32 at s[at:].
func le32(s string, at int) uint32 {
	_ = s[at+3] // one bounds check
	return uint32(s[at]) | uint32(s[at+1])<<8 | uint32(s[at+2])<<16 | uint32(s[at+3])<<24
}
