package kpl

import (
	"crypto/md5"
	"encoding/binary"
	"math/bits"
	"strconv"
)

// hashKey is a Kinesis hash key: an unsigned 128-bit integer, hi holding the top 64 bits.
type hashKey struct{ hi, lo uint64 }

// maxHashKey is 2^128-1, the end of a stream's hash key space.
var maxHashKey = hashKey{^uint64(0), ^uint64(0)}

// compare returns -1, 0 or +1 as h is less than, equal to or greater than o.
func (h hashKey) compare(o hashKey) int {
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

// partitionKeyHash is the hash key Kinesis derives from a partition key: the MD5 digest of
// its UTF-8 bytes read as a big-endian 128-bit integer.
func partitionKeyHash(partitionKey string) hashKey {
	// Copying into a stack array keeps md5.Sum from needing a heap copy of the string.
	var buf [maxPartitionKeyBytes]byte
	n := copy(buf[:], partitionKey)
	sum := md5.Sum(buf[:n])
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// parseHashKey parses a decimal explicit hash key in 0..2^128-1: digits only, no sign, at
// most 39 of them. It allocates nothing.
func parseHashKey(s string) (hashKey, bool) {
	if s == "" || len(s) > 39 {
		return hashKey{}, false
	}
	var h hashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return hashKey{}, false
		}
		// h = h*10 + digit, failing on overflow of 128 bits.
		hiHi, hiLo := bits.Mul64(h.hi, 10)
		loHi, loLo := bits.Mul64(h.lo, 10)
		if hiHi != 0 {
			return hashKey{}, false
		}
		hi, carry := bits.Add64(hiLo, loHi, 0)
		if carry != 0 {
			return hashKey{}, false
		}
		lo, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		hi, carry2 := bits.Add64(hi, 0, carry)
		if carry2 != 0 {
			return hashKey{}, false
		}
		h = hashKey{hi, lo}
	}
	return h, true
}

// String returns h in decimal, the form Kinesis uses for hash keys.
func (h hashKey) String() string {
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
		h = hashKey{qHi, qLo}
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
