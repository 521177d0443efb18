package ingesttest

import (
	"bytes"
	"context"
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
	if err := f.waitStall(req.Context()); err != nil {
		return nil, err
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
	failed, forward := f.chooseFailedEntries(in.Records)
	var real putRecordsResponse
	if len(forward) > 0 {
		var passThrough *http.Response
		if real, passThrough, err = f.forward(req, in, forward); passThrough != nil || err != nil {
			return passThrough, err
		}
	}
	merged, err := f.mergeAnswers(in.Records, failed, real)
	if err != nil {
		return nil, err
	}
	return jsonResponse(req, http.StatusOK, merged), nil
}

// waitStall blocks while Stall is set and open: until it is closed or ctx ends.
func (f *FaultTransport) waitStall(ctx context.Context) error {
	if f.Stall == nil {
		return nil
	}
	select {
	case <-f.Stall:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chooseFailedEntries decides which entries fail (all with ThrottleAll, else
// each with EntryFailRate) and returns that choice with the other entries,
// the ones to forward, in order.
func (f *FaultTransport) chooseFailedEntries(entries []json.RawMessage) (failed []bool, forward []json.RawMessage) {
	failed = make([]bool, len(entries))
	for i := range entries {
		failed[i] = f.ThrottleAll || f.roll(f.EntryFailRate)
		if !failed[i] {
			forward = append(forward, entries[i])
		}
	}
	return failed, forward
}

// forward sends the call on to the emulator with only the entries in
// forward and returns its answer, one result per forwarded entry. A
// whole-call error answer of the emulator comes back as passThrough, to be
// returned as it is; a connection reset injected after the emulator wrote
// (half of ResetRate) comes back as err.
func (f *FaultTransport) forward(req *http.Request, in putRecordsRequest, forward []json.RawMessage) (answer putRecordsResponse, passThrough *http.Response, err error) {
	in.Records = forward
	body, err := json.Marshal(in)
	if err != nil {
		return answer, nil, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp, err := f.next.RoundTrip(out)
	if err != nil {
		return answer, nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return answer, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		return answer, resp, nil
	}
	if err := json.Unmarshal(respBody, &answer); err != nil || len(answer.Records) != len(forward) {
		return answer, nil, fmt.Errorf("fault transport: PutRecords answer %q: %v", respBody, err)
	}
	if f.roll(f.ResetRate / 2) {
		// Written, but the client never hears of it: it must retry (and the
		// stream holds duplicates, as Kinesis would).
		f.count(func(c *FaultCounts) { c.ResetsAfter++ })
		return answer, nil, connReset()
	}
	return answer, nil, nil
}

// mergeAnswers builds the answer to the whole call: for each entry, in order,
// an injected ProvisionedThroughputExceededException if it failed, else the
// emulator's result (the next one of real). It records the entries the
// emulator accepted and counts the failed ones.
func (f *FaultTransport) mergeAnswers(entries []json.RawMessage, failed []bool, real putRecordsResponse) (putRecordsResponse, error) {
	merged := putRecordsResponse{EncryptionType: real.EncryptionType}
	next := 0
	for i := range entries {
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
		if err := json.Unmarshal(entries[i], &e); err != nil {
			return merged, err
		}
		f.mu.Lock()
		f.accepted = append(f.accepted, AcceptedEntry{ExplicitHashKey: e.ExplicitHashKey, PartitionKey: e.PartitionKey, ShardID: r.ShardID})
		f.mu.Unlock()
	}
	f.count(func(c *FaultCounts) { c.FailedEntries += merged.FailedRecordCount })
	return merged, nil
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
