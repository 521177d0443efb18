package telemetry

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestSyncWritersKeepLinesWhole writes lines from many goroutines into a plain bytes.Buffer
// through a SyncWriter, and into a SyncBuffer read meanwhile: every line comes out whole
// (and -race sees no unsynchronized access).
func TestSyncWritersKeepLinesWhole(t *testing.T) {
	const writers, lines = 8, 200
	var plain bytes.Buffer
	var buffered SyncBuffer
	tests := map[string]struct {
		w    io.Writer
		read func() string
	}{
		"SyncWriter": {NewSyncWriter(&plain), plain.String},
		"SyncBuffer": {&buffered, buffered.String},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					for i := range lines {
						fmt.Fprintf(tc.w, "{\"writer\":%d,\"line\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", 64))
					}
				})
			}
			if name == "SyncBuffer" {
				_ = tc.read() // a read while the writers run
			}
			wg.Wait()
			got := strings.Split(strings.TrimSuffix(tc.read(), "\n"), "\n")
			if len(got) != writers*lines {
				t.Fatalf("%d lines, want %d", len(got), writers*lines)
			}
			seen := map[string]bool{}
			for _, l := range got {
				var g, i int
				if _, err := fmt.Sscanf(l, "{\"writer\":%d,\"line\":%d,", &g, &i); err != nil || !strings.HasSuffix(l, strings.Repeat("x", 64)+`"}`) {
					t.Fatalf("torn line %q", l)
				}
				seen[l] = true
			}
			if len(seen) != writers*lines {
				t.Errorf("%d distinct lines, want %d", len(seen), writers*lines)
			}
		})
	}
}
