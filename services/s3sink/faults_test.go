package s3sink

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// faultTransport sits between an SDK client and the emulator and injects faults into the requests a rule matches:
// error answers instead of forwarding (S3's 500 InternalError, 503 SlowDown), answers lost after forwarding, and
// requests held until the test releases them.
type faultTransport struct {
	next  http.RoundTripper
	mu    sync.Mutex
	rules []*faultRule
}

// faultRule is one fault. Exactly one of status (answer with it), lose (forward, then answer 500 as if the answer
// was lost) and hold (wait for release, then forward) is set.
type faultRule struct {
	method, keyContains string
	// times is how many matching requests the rule affects; 0 means every one.
	times int
	// every affects one matching request in every; 0 or 1 means each.
	every int

	status int
	code   string
	lose   bool
	hold   bool

	// held is closed when the first request is held; release lets held requests through.
	held, release chan struct{}
	heldOnce      sync.Once
	seen, hit     int
	// statuses are the emulator's answers to the held requests, once released.
	statuses []int
}

func newFaultTransport() *faultTransport {
	return &faultTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
}

// add installs r and returns it.
func (f *faultTransport) add(r *faultRule) *faultRule {
	if r.hold {
		r.held, r.release = make(chan struct{}), make(chan struct{})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, r)
	return r
}

// clear removes every rule (held requests stay held until released).
func (f *faultTransport) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// hits returns how many requests r affected.
func (f *faultTransport) hits(r *faultRule) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.hit
}

// heldStatuses returns the answers to r's held requests so far.
func (f *faultTransport) heldStatuses(r *faultRule) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(r.statuses)
}

// RoundTrip implements http.RoundTripper.
func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := f.match(req)
	switch {
	case r == nil:
		return f.next.RoundTrip(req)
	case r.status != 0:
		if req.Body != nil {
			_, _ = io.Copy(io.Discard, req.Body)
			_ = req.Body.Close()
		}
		return errorResponse(req, r.status, r.code), nil
	case r.lose:
		resp, err := f.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return errorResponse(req, http.StatusInternalServerError, "InternalError"), nil
	default: // hold
		r.heldOnce.Do(func() { close(r.held) })
		<-r.release
		// A request on the wire completes at S3 even when its client gave up: forward it regardless.
		resp, err := f.next.RoundTrip(req.Clone(context.WithoutCancel(req.Context())))
		if err == nil {
			f.mu.Lock()
			r.statuses = append(r.statuses, resp.StatusCode)
			f.mu.Unlock()
		}
		return resp, err
	}
}

// match returns the rule that affects req, counting it, or nil.
func (f *faultTransport) match(req *http.Request) *faultRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if req.Method != r.method || !strings.Contains(req.URL.Path, r.keyContains) {
			continue
		}
		if r.times > 0 && r.hit >= r.times {
			continue
		}
		r.seen++
		if r.every > 1 && r.seen%r.every != 0 {
			continue
		}
		r.hit++
		return r
	}
	return nil
}

// errorResponse is an S3 error answer.
func errorResponse(req *http.Request, status int, code string) *http.Response {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Request: req, ContentLength: int64(len(body)),
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
	}
}
