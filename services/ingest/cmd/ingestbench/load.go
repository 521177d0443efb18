package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// loadResult is what one case measured, over one or more windows.
type loadResult struct {
	latencies []time.Duration // of every answered request in the measured windows
	statuses  map[int]int     // answers by status
	elapsed   time.Duration   // total length of the measured windows
}

func (r loadResult) perSecond() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// add merges the result of another window.
func (r *loadResult) add(o loadResult) {
	r.latencies = append(r.latencies, o.latencies...)
	r.elapsed += o.elapsed
	if r.statuses == nil {
		r.statuses = map[int]int{}
	}
	for k, v := range o.statuses {
		r.statuses[k] += v
	}
}

// percentile returns the p-th percentile latency (0 < p < 100).
func (r loadResult) percentile(p int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[len(s)*p/100]
}

// drive sends the same request over conns keep-alive connections to addr,
// each connection one request at a time, for warmup then duration, and
// measures the answers within the duration. The client writes prepared
// bytes and reads answers with a minimal HTTP/1.1 parser, so that it costs
// little CPU next to the server it measures (both share the machine).
func drive(ctx context.Context, addr string, request []byte, conns int, warmup, duration time.Duration) (loadResult, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	stopAt := measureFrom.Add(duration)

	type connStats struct {
		latencies []time.Duration
		statuses  map[int]int
		err       error
	}
	stats := make([]connStats, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			s := &stats[i]
			s.statuses = map[int]int{}
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				s.err = err
				return
			}
			defer c.Close()
			// Unblock reads when the run ends (or is cancelled).
			stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
			defer stop()
			r := bufio.NewReaderSize(c, 16<<10)
			for {
				sent := time.Now()
				if sent.After(stopAt) {
					return
				}
				if _, err := c.Write(request); err != nil {
					s.err = err
					return
				}
				status, err := readResponse(r)
				if err != nil {
					s.err = err
					return
				}
				if sent.After(measureFrom) {
					s.latencies = append(s.latencies, time.Since(sent))
					s.statuses[status]++
				}
			}
		})
	}
	wg.Wait()

	res := loadResult{statuses: map[int]int{}, elapsed: duration}
	var all []time.Duration
	for _, s := range stats {
		if s.err != nil && ctx.Err() == nil {
			return res, fmt.Errorf("load connection: %w", s.err)
		}
		all = append(all, s.latencies...)
		for k, v := range s.statuses {
			res.statuses[k] += v
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(all) == 0 {
		return res, errors.New("no request was answered in the measured window")
	}
	res.latencies = all
	return res, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and
// returns its status.
func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("read status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("read header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := r.Discard(length); err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return status, nil
}

// postRequest formats a keep-alive POST with a JSON body.
func postRequest(path string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, len(body))
	b.Write(body)
	return b.Bytes()
}
