package kpl

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeAnswer is the answer of testdata/kinesis_agg.js.
type nodeAnswer struct {
	Encoded [][]compatRecord `json:"encoded"`
	Decoded []struct {
		Error   string `json:"error"`
		Records []struct {
			compatRecord
			SubSequenceNumber int64 `json:"subSequenceNumber"`
		} `json:"records"`
	} `json:"decoded"`
}

// runNodeAgg runs testdata/kinesis_agg.js, which encodes each record set
// and decodes each Kinesis record with the Node module aws-kinesis-agg.
func runNodeAgg(t *testing.T, encode [][]compatRecord, decode []compatRecord) nodeAnswer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (%v): install Node.js, then run `npm ci` at the repository root", err)
	}
	modules := filepath.Join(repoRoot(t), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "aws-kinesis-agg", "package.json")); err != nil {
		t.Fatalf("aws-kinesis-agg is not installed (%v): run `npm ci` at the repository root", err)
	}
	request, err := json.Marshal(map[string]any{"encode": encode, "decode": decode})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "kinesis_agg.js"), modules)
	cmd.Stdin = bytes.NewReader(request)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node testdata/kinesis_agg.js: %v\n%s", err, stderr.Bytes())
	}
	var answer nodeAnswer
	if err := json.Unmarshal(out, &answer); err != nil {
		t.Fatalf("decoding the answer of kinesis_agg.js: %v", err)
	}
	if len(answer.Encoded) != len(encode) || len(answer.Decoded) != len(decode) {
		t.Fatalf("kinesis_agg.js answered %d encodings and %d decodings, want %d and %d",
			len(answer.Encoded), len(answer.Decoded), len(encode), len(decode))
	}
	return answer
}

// repoRoot walks up from the package directory to the directory of go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
}

// TestNodeCompatibility proves byte compatibility with aws-kinesis-agg both
// ways: aggregates encoded here decode there to the same records, aggregates
// encoded there decode here to the same records, and for the same records
// both encoders produce the same bytes.
func TestNodeCompatibility(t *testing.T) {
	cases := compatCases()
	names := slices.Sorted(maps.Keys(cases))
	var encode [][]compatRecord
	var decode []compatRecord
	for _, name := range names {
		encode = append(encode, cases[name])
		decode = append(decode, compatRecord{PartitionKey: "outer-" + name, Data: encodeHere(cases[name])})
	}
	answer := runNodeAgg(t, encode, decode)

	for i, name := range names {
		records := cases[name]
		t.Run(name, func(t *testing.T) {
			// Encoded here, decoded by Node.
			decoded := answer.Decoded[i]
			if decoded.Error != "" {
				t.Fatalf("Node failed to decode our aggregate: %s", decoded.Error)
			}
			if len(decoded.Records) != len(records) {
				t.Fatalf("Node decoded %d records from our aggregate, want %d", len(decoded.Records), len(records))
			}
			// The Node decoder cannot tell an absent explicit_hash_key_index
			// from index 0 (protobufjs fills in the default), so it reports
			// the first explicit hash key of the table for a record that
			// has none. Expect exactly that.
			firstHashKey := ""
			for _, r := range records {
				if r.ExplicitHashKey != "" {
					firstHashKey = r.ExplicitHashKey
					break
				}
			}
			for j, r := range records {
				got := decoded.Records[j]
				wantHashKey := cmp.Or(r.ExplicitHashKey, firstHashKey)
				if got.PartitionKey != r.PartitionKey || got.ExplicitHashKey != wantHashKey ||
					!bytes.Equal(got.Data, r.Data) || got.SubSequenceNumber != int64(j) {
					t.Fatalf("Node decoded record %d as {%q %q %d bytes #%d}, want {%q %q %d bytes #%d}", j,
						got.PartitionKey, got.ExplicitHashKey, len(got.Data), got.SubSequenceNumber,
						r.PartitionKey, wantHashKey, len(r.Data), j)
				}
			}

			// Encoded by Node, decoded here.
			aggregates := answer.Encoded[i]
			if len(aggregates) != 1 {
				t.Fatalf("Node built %d aggregates, want 1", len(aggregates))
			}
			got, err := Deaggregate(nil, aggregates[0].PartitionKey, aggregates[0].Data)
			if err != nil {
				t.Fatalf("decoding Node's aggregate: %v", err)
			}
			assertSameRecords(t, got, aggregatedRecords(records))

			// Same records, same bytes.
			if !bytes.Equal(aggregates[0].Data, decode[i].Data) {
				t.Fatalf("Node's aggregate (%d bytes) differs from ours (%d bytes)", len(aggregates[0].Data), len(decode[i].Data))
			}
		})
	}
}

// TestNodeAgreesOnBadInput checks that both decoders treat plain and corrupt
// records the same way: plain data passes through, a bad digest is an error.
func TestNodeAgreesOnBadInput(t *testing.T) {
	good := encodeHere([]compatRecord{{"k", "", []byte("payload")}, {"k2", "", []byte("more")}})
	badDigest := slices.Clone(good)
	badDigest[len(badDigest)-1] ^= 1
	tests := map[string]struct {
		data      []byte
		wantErr   error
		nodeError string
	}{
		"plain data": {data: []byte("not an aggregate")},
		"bad digest": {data: badDigest, wantErr: ErrChecksum, nodeError: "Invalid record checksum"},
	}
	names := slices.Sorted(maps.Keys(tests))
	var decode []compatRecord
	for _, name := range names {
		decode = append(decode, compatRecord{PartitionKey: "outer", Data: tests[name].data})
	}
	answer := runNodeAgg(t, nil, decode)
	for i, name := range names {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			got, err := Deaggregate(nil, "outer", tc.data)
			node := answer.Decoded[i]
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(node.Error, tc.nodeError) {
					t.Fatalf("errors: here %v, Node %q; want %v and %q", err, node.Error, tc.wantErr, tc.nodeError)
				}
				return
			}
			if err != nil || node.Error != "" {
				t.Fatalf("errors: here %v, Node %q; want none", err, node.Error)
			}
			if len(got) != 1 || len(node.Records) != 1 || got[0].Aggregated ||
				!bytes.Equal(got[0].Data, tc.data) || !bytes.Equal(node.Records[0].Data, tc.data) ||
				got[0].PartitionKey != "outer" || node.Records[0].PartitionKey != "outer" {
				t.Fatalf("plain data did not pass through both decoders: here %+v, Node %+v", got, node.Records)
			}
		})
	}
}
