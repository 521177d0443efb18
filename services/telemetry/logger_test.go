package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var out bytes.Buffer
	log := NewLogger(&out, slog.LevelInfo)
	log.Debug("dropped")
	log.Info("shard closed", LogKeyStream, "s1", LogKeyShardID, "shardId-000000000001")
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON line: %q: %v", out.String(), err)
	}
	want := map[string]any{"level": "INFO", "msg": "shard closed", "stream": "s1", "shard_id": "shardId-000000000001"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
