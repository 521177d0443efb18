package telemetry

import (
	"io"
	"log/slog"
)

// Stable log attribute keys shared by every service.
const (
	// LogKeyStream names the Kinesis stream a message is about.
	LogKeyStream = "stream"
	// LogKeyShardID names the Kinesis shard a message is about.
	LogKeyShardID = "shard_id"
	// LogKeyWorkerID names the consumer worker (lease owner) that logs.
	LogKeyWorkerID = "worker_id"
	// LogKeyError carries an error's text.
	LogKeyError = "error"
)

// NewLogger returns a logger that writes one JSON object per line to w and drops
// messages below level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
