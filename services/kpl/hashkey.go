package kpl

import (
	"crypto/md5"
	"encoding/binary"
	"math/bits"
	"strconv"
)

// HashKey is a Kinesis hash key: an unsigned 128-bit integer that places a record in the
// shard whose hash key range holds it. The zero value is hash key 0. HashKeys are
// comparable with ==; [HashKey.Compare] orders them.
type HashKey struct{ hi, lo uint64 } // hi holds the top 64 bits

// maxHashKey is 2^128-1, the end of a stream's hash key space.
var maxHashKey = HashKey{^uint64(0), ^uint64(0)}

// Compare returns -1, 0 or +1 as h is less than, equal to or greater than o.
func (h HashKey) Compare(o HashKey) int {
	switch {
	case h.hi < o.hi:
		return -1
	case h.hi > o.hi:
		return 1
	case h.lo < o.lo:
		return -1
	case h.lo > o.lo:
		return 1
	}
	return 0
}

// PartitionKeyHash is the hash key Kinesis derives from a partition key: the MD5 digest of
// its UTF-8 bytes read as a big-endian 128-bit integer. It allocates nothing for keys of
// valid length (at most 256 characters).
func PartitionKeyHash(partitionKey string) HashKey {
	if len(partitionKey) > maxPartitionKeyBytes {
		return digestHashKey(md5.Sum([]byte(partitionKey)))
	}
	// Copying into a stack array keeps md5.Sum from needing a heap copy of the string.
	var buf [maxPartitionKeyBytes]byte
	n := copy(buf[:], partitionKey)
	return digestHashKey(md5.Sum(buf[:n]))
}

// digestHashKey reads an MD5 digest as a big-endian hash key.
func digestHashKey(sum [md5.Size]byte) HashKey {
	return HashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// UserRecordHashKey is the hash key Kinesis routes a user record by: its explicit hash key
// when that is a valid one, else [PartitionKeyHash] of its partition key. Consumers use it to
// check that a deaggregated record belongs to the shard it was read from.
func UserRecordHashKey(partitionKey, explicitHashKey string) HashKey {
	if explicitHashKey != "" {
		if h, ok := ParseHashKey(explicitHashKey); ok {
			return h
		}
	}
	return PartitionKeyHash(partitionKey)
}

// ParseHashKey parses a decimal hash key in 0..2^128-1, the form Kinesis uses for explicit
// hash keys and shard ranges: digits only, no sign, at most 39 of them. It reports false for
// anything else, and allocates nothing.
func ParseHashKey(s string) (HashKey, bool) {
	if s == "" || len(s) > 39 {
		return HashKey{}, false
	}
	var h HashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return HashKey{}, false
		}
		// h = h*10 + digit, failing on overflow of 128 bits.
		hiHi, hiLo := bits.Mul64(h.hi, 10)
		loHi, loLo := bits.Mul64(h.lo, 10)
		if hiHi != 0 {
			return HashKey{}, false
		}
		hi, carry := bits.Add64(hiLo, loHi, 0)
		if carry != 0 {
			return HashKey{}, false
		}
		lo, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return HashKey{}, false
		}
		h = HashKey{hi, lo}
	}
	return h, true
}

// String returns h in decimal, the form [ParseHashKey] reads.
func (h HashKey) String() string {
	if h.hi == 0 {
		return strconv.FormatUint(h.lo, 10)
	}
	// Repeated division by 10^19 (the largest power of ten in 64 bits).
	const chunk = 10_000_000_000_000_000_000
	var parts [3]uint64
	n := 0
	for h.hi != 0 || h.lo != 0 {
		qHi := h.hi / chunk
		r := h.hi % chunk
		qLo, rem := bits.Div64(r, h.lo, chunk)
		parts[n] = rem
		n++
		h = HashKey{qHi, qLo}
	}
	out := strconv.AppendUint(nil, parts[n-1], 10)
	for i := n - 2; i >= 0; i-- {
		s := strconv.FormatUint(parts[i], 10)
		for range 19 - len(s) {
			out = append(out, '0')
		}
		out = append(out, s...)
	}
	return string(out)
}
