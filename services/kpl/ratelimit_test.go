package kpl

import (
	"testing"
	"time"
)

func TestShardLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := map[string]struct {
		percent   int
		sizes     []int // records taken at t0, in order
		wantTaken int
		wantWait  time.Duration // wait for one more 1-byte record after them
	}{
		"records cap at 100%": {
			percent: 100, sizes: repeat(1, 1001), wantTaken: 1000, wantWait: time.Millisecond,
		},
		"records cap at 150%": {
			percent: 150, sizes: repeat(1, 2000), wantTaken: 1500, wantWait: time.Second / 1500,
		},
		"bytes cap at 100%": {
			// 20 records of 51,200 bytes = 1,024,000 bytes; the 21st would pass 1 MiB.
			percent: 100, sizes: repeat(51200, 21), wantTaken: 20, wantWait: 0,
		},
		"oversized record needs a full bucket": {
			// At 10 % the byte bucket holds 104,857.6 bytes: a 1 MiB record still goes out when it
			// is full, and leaves it 943,718.4 bytes in debt, 9 s of refill.
			percent: 10, sizes: []int{1 << 20, 1}, wantTaken: 1, wantWait: 9 * time.Second,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := newShardLimiter(tc.percent, t0)
			taken := 0
			for _, s := range tc.sizes {
				if l.take(t0, s) {
					taken++
				}
			}
			if taken != tc.wantTaken {
				t.Fatalf("took %d records, want %d", taken, tc.wantTaken)
			}
			got := l.wait(t0, 1)
			if d := got - tc.wantWait; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("wait = %v, want %v", got, tc.wantWait)
			}
		})
	}
}

func TestShardLimiterRefill(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newShardLimiter(100, t0)
	for range 1000 {
		if !l.take(t0, 100) {
			t.Fatal("a fresh bucket refused a record")
		}
	}
	if l.take(t0, 100) {
		t.Fatal("1001st record in the same instant was allowed")
	}
	// Half a second later 500 more records fit, and no more.
	t1 := t0.Add(500 * time.Millisecond)
	n := 0
	for l.take(t1, 100) {
		n++
	}
	if n != 500 {
		t.Errorf("after 0.5 s took %d records, want 500", n)
	}
	// A long idle period refills to one second's worth only.
	t2 := t1.Add(time.Hour)
	n = 0
	for l.take(t2, 1) {
		n++
	}
	if n != 1000 {
		t.Errorf("after an hour took %d records, want the bucket capacity 1000", n)
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
