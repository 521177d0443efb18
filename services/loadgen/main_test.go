package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string // part of the error message; empty for valid flags
	}{
		"records":            {args: []string{"-records", "10"}},
		"local polling":      {args: []string{"-local", "polling", "-duration", "5s"}},
		"no end":             {args: []string{"-rate", "10"}, want: "set -records or -duration"},
		"unknown local mode": {args: []string{"-local", "kafka", "-records", "1"}, want: "-local must be fanout or polling"},
		"stray argument":     {args: []string{"-records", "1", "now"}, want: "unexpected arguments"},
		"unknown flag":       {args: []string{"-speed", "1"}, want: "flag provided but not defined"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var errOut strings.Builder
			_, err := parseFlags(tc.args, &errOut)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v: %s", err, errOut.String())
				}
				return
			}
			if err == nil || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("error %v, output %q; want it to say %q", err, errOut.String(), tc.want)
			}
		})
	}
}
