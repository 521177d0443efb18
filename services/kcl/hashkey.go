package kcl

import (
	"crypto/md5"
	"encoding/binary"
	"math/bits"
)

// hashKey is a Kinesis hash key, an unsigned 128-bit integer.
type hashKey struct{ hi, lo uint64 }

func (h hashKey) less(o hashKey) bool {
	return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo)
}

// hashRange is a shard's inclusive hash key range.
type hashRange struct {
	start, end hashKey
	known      bool
}

// newHashRange parses a shard's decimal range; a range that does not parse is unknown and contains every key.
func newHashRange(start, end string) hashRange {
	s, ok1 := parseHashKey(start)
	e, ok2 := parseHashKey(end)
	return hashRange{start: s, end: e, known: ok1 && ok2}
}

func (r hashRange) contains(h hashKey) bool {
	return !r.known || (!h.less(r.start) && !r.end.less(h))
}

// userRecordHashKey is the hash key Kinesis routes a user record by: its explicit hash key when it has a valid one,
// else the MD5 of its partition key read as a big-endian integer.
func userRecordHashKey(partitionKey, explicitHashKey string) hashKey {
	if explicitHashKey != "" {
		if h, ok := parseHashKey(explicitHashKey); ok {
			return h
		}
	}
	var buf [256]byte // partition keys are at most 256 bytes; the array keeps md5.Sum off the heap
	n := copy(buf[:], partitionKey)
	sum := md5.Sum(buf[:n])
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// parseHashKey parses a decimal number in 0..2^128-1 without allocating.
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
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return hashKey{}, false
		}
		h = hashKey{hi, lo}
	}
	return h, true
}
