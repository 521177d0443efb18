package telemetry

import (
	"bytes"
	"io"
	"sync"
)

// SyncWriter serializes whole writes to one io.Writer, so the log, metric and record lines
// that several goroutines write to one stream (a container's stdout) never interleave. Give
// the same SyncWriter to the logger, the metrics and any other line writer.
type SyncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewSyncWriter returns a SyncWriter writing to w.
func NewSyncWriter(w io.Writer) *SyncWriter {
	return &SyncWriter{w: w}
}

// Write passes p to the underlying writer whole, one call at a time.
func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// SyncBuffer is an in-memory destination for log and metric lines that one goroutine may read
// while others still write, as tests of a running service do. The zero value is empty and
// ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p whole.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
