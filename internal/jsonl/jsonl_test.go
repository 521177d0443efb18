package jsonl

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSkipsWhatDoesNotDecode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("{\"n\":1}\nnot json\n{\"n\":2}\n{\"n\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read[struct{ N int }](path)
	if err != nil || len(got) != 2 || got[0].N != 1 || got[1].N != 2 {
		t.Fatalf("Read = %+v, %v; want the two whole lines", got, err)
	}
	missing, err := Read[struct{ N int }](filepath.Join(t.TempDir(), "none"))
	if err != nil || missing != nil {
		t.Fatalf("Read of a missing file = %v, %v; want no lines", missing, err)
	}
}
