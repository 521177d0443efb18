package kcl

import (
	"testing"

	"github.com/streamproc/streamproc/services/kpl"
)

func TestHashRangeContains(t *testing.T) {
	key := func(s string) kpl.HashKey {
		h, ok := kpl.ParseHashKey(s)
		if !ok {
			t.Fatalf("bad key %q", s)
		}
		return h
	}
	const maxKey = "340282366920938463463374607431768211455"
	tests := map[string]struct {
		start, end, key string
		want            bool
	}{
		"inside":               {"100", "200", "150", true},
		"start is inclusive":   {"100", "200", "100", true},
		"end is inclusive":     {"100", "200", "200", true},
		"below":                {"100", "200", "99", false},
		"above":                {"100", "200", "201", false},
		"whole key space":      {"0", maxKey, maxKey, true},
		"upper half, 2^64":     {"18446744073709551616", maxKey, "18446744073709551615", false},
		"unparsable start":     {"x", "200", "999", true},
		"unparsable end":       {"100", "", "0", true},
		"end beyond 2^128 - 1": {"0", "340282366920938463463374607431768211456", "5", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := newHashRange(tc.start, tc.end).contains(key(tc.key)); got != tc.want {
				t.Errorf("[%s, %s] contains %s = %v, want %v", tc.start, tc.end, tc.key, got, tc.want)
			}
		})
	}
}
