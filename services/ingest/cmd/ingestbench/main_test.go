package main

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunPrintsEveryCase(t *testing.T) {
	var out strings.Builder
	c := benchConfig{
		duration: 200 * time.Millisecond, rounds: 2, latency: time.Millisecond, linger: 20 * time.Millisecond,
		shards: 2, recordBytes: 100, bareConns: 4, asyncConns: 4, ackConns: 16,
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := run(ctx, c, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bare JSON-decoding handler", "of bare", "of bound", "map[202:", "map[200:", "PutRecords calls"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	if err := run(t.Context(), benchConfig{}, &strings.Builder{}); err == nil {
		t.Fatal("zero config accepted")
	}
}

func TestReadResponse(t *testing.T) {
	tests := map[string]struct {
		in         string
		wantStatus int
		wantErr    bool
	}{
		"ok":           {"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nbody", 202, false},
		"lower header": {"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n", 503, false},
		"no length":    {"HTTP/1.1 200 OK\r\n\r\n", 0, true},
		"bad status":   {"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", 0, true},
		"not HTTP":     {"SSH-2.0\r\n", 0, true},
		"short body":   {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)))
			if (err != nil) != tc.wantErr || status != tc.wantStatus {
				t.Fatalf("readResponse = %d, %v; want %d, error %v", status, err, tc.wantStatus, tc.wantErr)
			}
		})
	}
}
