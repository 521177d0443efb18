package kpl

import (
	"crypto/md5"
	"math/big"
	"strings"
	"testing"
)

// bigHashKey is h as a big.Int, built from its two halves rather than from h.String().
func bigHashKey(h HashKey) *big.Int {
	b := new(big.Int).Lsh(new(big.Int).SetUint64(h.hi), 64)
	return b.Or(b, new(big.Int).SetUint64(h.lo))
}

func TestParseHashKey(t *testing.T) {
	tests := map[string]struct {
		in   string
		want HashKey
		ok   bool
	}{
		"zero":             {"0", HashKey{}, true},
		"small":            {"12345", HashKey{0, 12345}, true},
		"2^64":             {"18446744073709551616", HashKey{1, 0}, true},
		"max":              {"340282366920938463463374607431768211455", maxHashKey, true},
		"leading zeros":    {"007", HashKey{0, 7}, true},
		"2^128 overflows":  {"340282366920938463463374607431768211456", HashKey{}, false},
		"40 digits":        {"1000000000000000000000000000000000000000", HashKey{}, false},
		"empty":            {"", HashKey{}, false},
		"negative":         {"-1", HashKey{}, false},
		"plus sign":        {"+1", HashKey{}, false},
		"hex":              {"0x10", HashKey{}, false},
		"space":            {" 1", HashKey{}, false},
		"huge overflow hi": {"999999999999999999999999999999999999999", HashKey{}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := ParseHashKey(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseHashKey(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok {
				want, _ := new(big.Int).SetString(tc.in, 10)
				if got.String() != want.String() {
					t.Errorf("String() = %s, want %s", got.String(), want.String())
				}
			}
		})
	}
}

// FuzzParseHashKey checks ParseHashKey and String against math/big: the same inputs are
// accepted, and they give the same number.
func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "", "-5", "12a", "１"} {
		f.Add(s)
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseHashKey(s)
		digits := s != "" && len(s) <= 39
		for _, c := range []byte(s) {
			digits = digits && c >= '0' && c <= '9'
		}
		want, _ := new(big.Int).SetString(s, 10)
		wantOK := digits && want != nil && want.Cmp(limit) < 0
		if ok != wantOK {
			t.Fatalf("ParseHashKey(%q) ok = %v, want %v", s, ok, wantOK)
		}
		if !ok {
			return
		}
		if bigHashKey(got).Cmp(want) != 0 {
			t.Fatalf("ParseHashKey(%q) = %s", s, bigHashKey(got))
		}
		if got.String() != want.String() {
			t.Fatalf("ParseHashKey(%q).String() = %s", s, got.String())
		}
	})
}

func TestCompare(t *testing.T) {
	tests := map[string]struct {
		a, b HashKey
		want int
	}{
		"equal":          {HashKey{1, 2}, HashKey{1, 2}, 0},
		"low half less":  {HashKey{1, 2}, HashKey{1, 3}, -1},
		"high half wins": {HashKey{2, 0}, HashKey{1, ^uint64(0)}, 1},
		"zero and max":   {HashKey{}, maxHashKey, -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Errorf("Compare = %d, want %d", got, tc.want)
			}
			if got := tc.b.Compare(tc.a); got != -tc.want {
				t.Errorf("reversed Compare = %d, want %d", got, -tc.want)
			}
			if want := bigHashKey(tc.a).Cmp(bigHashKey(tc.b)); want != tc.want {
				t.Errorf("math/big says %d", want)
			}
		})
	}
}

func TestPartitionKeyHash(t *testing.T) {
	keys := map[string]string{
		"ascii":                  "partition-key-1",
		"one byte":               "a",
		"cyrillic":               "ключ",
		"256 two-byte chars":     strings.Repeat("é", 256),
		"longest valid key":      strings.Repeat("😀", 256),
		"longer than valid keys": string(make([]byte, 1025)),
	}
	for name, pk := range keys {
		t.Run(name, func(t *testing.T) {
			sum := md5.Sum([]byte(pk))
			want := new(big.Int).SetBytes(sum[:])
			if got := PartitionKeyHash(pk); bigHashKey(got).Cmp(want) != 0 {
				t.Errorf("PartitionKeyHash = %s, want %s", bigHashKey(got), want)
			}
		})
	}
}

func TestUserRecordHashKey(t *testing.T) {
	tests := map[string]struct {
		partitionKey, explicitHashKey string
		want                          HashKey
	}{
		"partition key only":              {"k", "", PartitionKeyHash("k")},
		"explicit hash key wins":          {"k", "12345", HashKey{0, 12345}},
		"explicit zero":                   {"k", "0", HashKey{}},
		"invalid explicit falls back":     {"k", "-1", PartitionKeyHash("k")},
		"overflowing explicit falls back": {"k", "340282366920938463463374607431768211456", PartitionKeyHash("k")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := UserRecordHashKey(tc.partitionKey, tc.explicitHashKey); got != tc.want {
				t.Errorf("UserRecordHashKey(%q, %q) = %s, want %s", tc.partitionKey, tc.explicitHashKey, got, tc.want)
			}
		})
	}
}

func TestHashKeyAllocatesNothing(t *testing.T) {
	pk := strings.Repeat("é", 256)
	if n := testing.AllocsPerRun(100, func() { UserRecordHashKey(pk, "") }); n != 0 {
		t.Errorf("partition key hash: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { UserRecordHashKey(pk, "340282366920938463463374607431768211455") }); n != 0 {
		t.Errorf("explicit hash key: %v allocations, want 0", n)
	}
}
