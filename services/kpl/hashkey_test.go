package kpl

import (
	"crypto/md5"
	"math/big"
	"testing"
)

func TestParseHashKey(t *testing.T) {
	tests := map[string]struct {
		in   string
		want hashKey
		ok   bool
	}{
		"zero":             {"0", hashKey{}, true},
		"small":            {"12345", hashKey{0, 12345}, true},
		"2^64":             {"18446744073709551616", hashKey{1, 0}, true},
		"max":              {"340282366920938463463374607431768211455", maxHashKey, true},
		"leading zeros":    {"007", hashKey{0, 7}, true},
		"2^128 overflows":  {"340282366920938463463374607431768211456", hashKey{}, false},
		"40 digits":        {"1000000000000000000000000000000000000000", hashKey{}, false},
		"empty":            {"", hashKey{}, false},
		"negative":         {"-1", hashKey{}, false},
		"plus sign":        {"+1", hashKey{}, false},
		"hex":              {"0x10", hashKey{}, false},
		"space":            {" 1", hashKey{}, false},
		"huge overflow hi": {"999999999999999999999999999999999999999", hashKey{}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := parseHashKey(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseHashKey(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
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

func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "-5", "１"} {
		f.Add(s)
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHashKey(s)
		digits := s != "" && len(s) <= 39
		for _, c := range []byte(s) {
			digits = digits && c >= '0' && c <= '9'
		}
		want, _ := new(big.Int).SetString(s, 10)
		wantOK := digits && want != nil && want.Cmp(limit) < 0
		if ok != wantOK {
			t.Fatalf("parseHashKey(%q) ok = %v, want %v", s, ok, wantOK)
		}
		if ok && got.String() != want.String() {
			t.Fatalf("parseHashKey(%q) = %s", s, got.String())
		}
	})
}

func TestPartitionKeyHash(t *testing.T) {
	for _, pk := range []string{"a", "partition-key-1", "ключ", string(make([]byte, 1024))} {
		sum := md5.Sum([]byte(pk))
		want := new(big.Int).SetBytes(sum[:])
		if got := partitionKeyHash(pk); got.String() != want.String() {
			t.Errorf("partitionKeyHash(%q) = %s, want %s", pk, got.String(), want.String())
		}
	}
}
