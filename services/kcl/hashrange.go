package kcl

import "github.com/streamproc/streamproc/services/kpl"

// hashRange is a shard's inclusive hash key range.
type hashRange struct {
	start, end kpl.HashKey
	known      bool
}

// newHashRange parses a shard's decimal range; a range that does not parse is unknown and contains every key.
func newHashRange(start, end string) hashRange {
	s, ok1 := kpl.ParseHashKey(start)
	e, ok2 := kpl.ParseHashKey(end)
	return hashRange{start: s, end: e, known: ok1 && ok2}
}

func (r hashRange) contains(h kpl.HashKey) bool {
	return !r.known || (r.start.Compare(h) <= 0 && h.Compare(r.end) <= 0)
}
