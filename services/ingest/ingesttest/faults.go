package ingesttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// putRecordsTarget is the X-Amz-Target of PutRecords in the Kinesis JSON protocol.
const putRecordsTarget = "Kinesis_20131202.PutRecords"

// FaultTransport is an http.RoundTripper that sits between the AWS SDK and
// kinesis-local and injects the faults no emulator produces into PutRecords
// calls: entries failing with ProvisionedThroughputExceededException (really
// not written), connection resets before and after the emulator wrote, 500
// InternalFailure answers, and a stall. Every other call passes through. Set
// its fields before the first request.
type FaultTransport struct {
	next http.RoundTripper

	// EntryFailRate is the share of PutRecords entries failed with
	// ProvisionedThroughputExceededException. Failed entries are taken out
	// of the request before it is forwarded, so they really are not written.
	EntryFailRate float64
	// ResetRate is the share of calls that end in a connection reset: half
	// before the request reaches the emulator, half after (written, but the
	// answer is lost).
	ResetRate float64
	// ServerErrorRate is the share of calls answered 500 InternalFailure
	// without reaching the emulator.
	ServerErrorRate float64
	// stall, when set, blocks every PutRecords call until the channel is
	// closed or the request's context ends.
	Stall chan struct{}
	// ThrottleAll fails every entry with ProvisionedThroughputExceededException.
	ThrottleAll bool

	mu  sync.Mutex
	rng *rand.Rand
	// accepted records every entry the emulator accepted, with the shard
	// it put it in.
	accepted []AcceptedEntry
	counts   FaultCounts
}

// AcceptedEntry is a PutRecords entry the emulator accepted.
type AcceptedEntry struct {
	// ExplicitHashKey and PartitionKey are the entry's, as sent (ExplicitHashKey empty when it had none); ShardID is
	// the shard the emulator answered it was put in.
	ExplicitHashKey, PartitionKey, ShardID string
}

// FaultCounts says how many PutRecords calls were seen and how many faults were injected.
type FaultCounts struct {
	// Calls counts the PutRecords calls seen; FailedEntries the entries answered as failed; ResetsBefore and
	// ResetsAfter the connection resets before and after the emulator wrote; ServerErrors the 500 answers injected.
	Calls, FailedEntries, ResetsBefore, ResetsAfter, ServerErrors int
}

// NewFaultTransport wraps next; seed makes the faults reproducible.
func NewFaultTransport(next http.RoundTripper, seed uint64) *FaultTransport {
	return &FaultTransport{next: next, rng: rand.New(rand.NewPCG(seed, seed))}
}

func (f *FaultTransport) roll(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < p
}

func (f *FaultTransport) count(fn func(*FaultCounts)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.counts)
}

// Snapshot returns the counts and the accepted entries so far.
func (f *FaultTransport) Snapshot() (FaultCounts, []AcceptedEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts, append([]AcceptedEntry(nil), f.accepted...)
}

func connReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// putRecordsRequest is the JSON body of PutRecords; entries stay raw so they
// are forwarded byte for byte.
type putRecordsRequest struct {
	Records    []json.RawMessage `json:"Records"`
	StreamName string            `json:"StreamName,omitempty"`
	StreamARN  string            `json:"StreamARN,omitempty"`
}

type putRecordsEntry struct {
	ExplicitHashKey string `json:"ExplicitHashKey"`
	PartitionKey    string `json:"PartitionKey"`
}

type putRecordsResultEntry struct {
	SequenceNumber string `json:"SequenceNumber,omitempty"`
	ShardID        string `json:"ShardId,omitempty"`
	ErrorCode      string `json:"ErrorCode,omitempty"`
	ErrorMessage   string `json:"ErrorMessage,omitempty"`
}

type putRecordsResponse struct {
	FailedRecordCount int                     `json:"FailedRecordCount"`
	Records           []putRecordsResultEntry `json:"Records"`
	EncryptionType    string                  `json:"EncryptionType,omitempty"`
}

// RoundTrip implements http.RoundTripper.
func (f *FaultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") != putRecordsTarget {
		return f.next.RoundTrip(req)
	}
	f.count(func(c *FaultCounts) { c.Calls++ })
	if f.Stall != nil {
		select {
		case <-f.Stall:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	if f.roll(f.ServerErrorRate) {
		f.count(func(c *FaultCounts) { c.ServerErrors++ })
		return jsonResponse(req, http.StatusInternalServerError, map[string]string{"__type": "InternalFailure", "message": "injected internal failure"}), nil
	}
	if f.roll(f.ResetRate / 2) {
		f.count(func(c *FaultCounts) { c.ResetsBefore++ })
		return nil, connReset()
	}

	var in putRecordsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("fault transport: decode PutRecords: %w", err)
	}
	// Choose the entries that fail; forward the others.
	failed := make([]bool, len(in.Records))
	var forward []json.RawMessage
	for i := range in.Records {
		failed[i] = f.ThrottleAll || f.roll(f.EntryFailRate)
		if !failed[i] {
			forward = append(forward, in.Records[i])
		}
	}
	var real putRecordsResponse
	if len(forward) > 0 {
		fwd := in
		fwd.Records = forward
		fwdBody, err := json.Marshal(fwd)
		if err != nil {
			return nil, err
		}
		out := req.Clone(req.Context())
		out.Body = io.NopCloser(bytes.NewReader(fwdBody))
		out.ContentLength = int64(len(fwdBody))
		out.Header.Set("Content-Length", strconv.Itoa(len(fwdBody)))
		resp, err := f.next.RoundTrip(out)
		if err != nil {
			return nil, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			// A whole-call error from the emulator passes through as it is.
			resp.Body = io.NopCloser(bytes.NewReader(respBody))
			return resp, nil
		}
		if err := json.Unmarshal(respBody, &real); err != nil || len(real.Records) != len(forward) {
			return nil, fmt.Errorf("fault transport: PutRecords answer %q: %v", respBody, err)
		}
		if f.roll(f.ResetRate / 2) {
			// Written, but the client never hears of it: it must retry
			// (and the stream holds duplicates, as Kinesis would).
			f.count(func(c *FaultCounts) { c.ResetsAfter++ })
			return nil, connReset()
		}
	}

	merged := putRecordsResponse{EncryptionType: real.EncryptionType}
	next := 0
	for i := range in.Records {
		if failed[i] {
			merged.FailedRecordCount++
			merged.Records = append(merged.Records, putRecordsResultEntry{
				ErrorCode:    "ProvisionedThroughputExceededException",
				ErrorMessage: "Rate exceeded for shard (injected)",
			})
			continue
		}
		r := real.Records[next]
		next++
		merged.Records = append(merged.Records, r)
		if r.ErrorCode != "" {
			merged.FailedRecordCount++
			continue
		}
		var e putRecordsEntry
		if err := json.Unmarshal(in.Records[i], &e); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.accepted = append(f.accepted, AcceptedEntry{ExplicitHashKey: e.ExplicitHashKey, PartitionKey: e.PartitionKey, ShardID: r.ShardID})
		f.mu.Unlock()
	}
	f.count(func(c *FaultCounts) { c.FailedEntries += merged.FailedRecordCount })
	return jsonResponse(req, http.StatusOK, merged), nil
}

func jsonResponse(req *http.Request, status int, v any) *http.Response {
	body, _ := json.Marshal(v)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
