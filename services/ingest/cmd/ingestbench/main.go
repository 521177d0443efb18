// Command ingestbench measures the ingest service over loopback HTTP, with
// the real producer engine in front of an in-memory Kinesis (one call takes
// -latency), and prints, from one run, single-record requests/s and p50/p99
// latency for three cases:
//
//  1. a bare Go handler that only decodes the same JSON (the baseline);
//  2. the ingest handler with ?ack=buffered (answers once the record is in
//     the producer's buffer), as a ratio of the baseline;
//  3. the ingest handler with the default acknowledgement (answers once
//     Kinesis accepted the record), as a ratio of its bound: each
//     connection has one request waiting for its aggregate, so throughput
//     is at most connections / (linger + put latency).
//
// Usage (from the repository root):
//
//	go run ./services/ingest/cmd/ingestbench -duration 5s
//
// The cases run interleaved in rounds (-rounds) so that all three see the
// same background load on a shared machine. The load generator writes prepared requests on keep-alive connections and
// reads answers with a minimal parser, so that it takes little of the CPU
// it shares with the server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/ingest/internal/kinesisfake"
	"github.com/streamproc/streamproc/services/kpl"
)

// benchConfig is set by the flags.
type benchConfig struct {
	duration, warmup time.Duration
	rounds           int
	latency, linger  time.Duration
	shards           int
	recordBytes      int
	bareConns        int
	asyncConns       int
	ackConns         int
}

func main() {
	var c benchConfig
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per case")
	flag.DurationVar(&c.warmup, "warmup", 300*time.Millisecond, "unmeasured time before each measured window")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds the cases are interleaved in (each runs duration/rounds per round)")
	flag.DurationVar(&c.latency, "latency", 5*time.Millisecond, "latency of every call to the in-memory Kinesis")
	flag.DurationVar(&c.linger, "linger", kpl.DefaultMaxBufferedTime, "producer MaxBufferedTime (the KPL's RecordMaxBufferedTime)")
	flag.IntVar(&c.shards, "shards", 4, "shards of the in-memory stream")
	flag.IntVar(&c.recordBytes, "record-bytes", 100, "bytes of data per record")
	flag.IntVar(&c.bareConns, "bare-conns", 64, "connections for the bare handler")
	flag.IntVar(&c.asyncConns, "async-conns", 64, "connections for ?ack=buffered")
	flag.IntVar(&c.ackConns, "ack-conns", 1024, "connections for the default acknowledgement")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ingestbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c benchConfig, out io.Writer) error {
	if c.duration <= 0 || c.rounds < 1 || c.warmup < 0 || c.linger <= 0 || c.latency < 0 || c.recordBytes < 1 ||
		c.bareConns < 1 || c.asyncConns < 1 || c.ackConns < 1 {
		return errors.New("durations and counts must be positive")
	}
	body, err := json.Marshal(map[string]string{"data": strings.Repeat("x", c.recordBytes)})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ingestbench: %d-byte keyless records; %v per case in %d interleaved rounds, %v warm-up per round; in-memory Kinesis: %d shards, %v per call; linger %v\n\n",
		c.recordBytes, c.duration, c.rounds, c.warmup, c.shards, c.latency, c.linger)

	// The machine is shared, so the cases run interleaved, in rounds of
	// duration/rounds each, and each sees the same background load.
	bareSrv, err := serve(http.HandlerFunc(bareHandler))
	if err != nil {
		return err
	}
	defer bareSrv.close()
	asyncSrv, asyncStream, err := serveProducer(ctx, c)
	if err != nil {
		return fmt.Errorf("ack=buffered: %w", err)
	}
	defer asyncSrv.close()
	ackSrv, ackStream, err := serveProducer(ctx, c)
	if err != nil {
		return fmt.Errorf("default ack: %w", err)
	}
	defer ackSrv.close()

	var bare, async, acked loadResult
	slice := c.duration / time.Duration(c.rounds)
	for range c.rounds {
		for _, cs := range []struct {
			name    string
			srv     *server
			request []byte
			conns   int
			into    *loadResult
		}{
			{"bare handler", bareSrv, postRequest("/", body), c.bareConns, &bare},
			{"ack=buffered", asyncSrv, postRequest("/?ack=buffered", body), c.asyncConns, &async},
			{"default ack", ackSrv, postRequest("/", body), c.ackConns, &acked},
		} {
			r, err := drive(ctx, cs.srv.addr, cs.request, cs.conns, c.warmup, slice)
			if err != nil {
				return fmt.Errorf("%s: %w", cs.name, err)
			}
			cs.into.add(r)
		}
	}
	asyncStats, ackStats := asyncStream.Stats(), ackStream.Stats()

	bound := float64(c.ackConns) / (c.linger + c.latency).Seconds()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tconns\treq/s\tp50\tp99\tratio\ttarget\tstatuses\t")
	row := func(name string, conns int, r loadResult, ratio, target string) {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%v\t%v\t%s\t%s\t%v\t\n", name, conns, r.perSecond(),
			r.percentile(50).Round(10*time.Microsecond), r.percentile(99).Round(10*time.Microsecond), ratio, target, r.statuses)
	}
	row("bare JSON-decoding handler", c.bareConns, bare, "1.00", "baseline")
	row("ingest ?ack=buffered", c.asyncConns, async, fmt.Sprintf("%.2f of bare", async.perSecond()/bare.perSecond()), ">= 0.70")
	row("ingest default ack", c.ackConns, acked, fmt.Sprintf("%.2f of bound", acked.perSecond()/bound), ">= 0.90")
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nbound of the default ack: %d conns / (%v linger + %v put) = %.0f req/s\n", c.ackConns, c.linger, c.latency, bound)
	for _, s := range []struct {
		name  string
		stats kinesisfake.Stats
	}{{"ack=buffered", asyncStats}, {"default ack", ackStats}} {
		if s.stats.Records > 0 {
			fmt.Fprintf(out, "Kinesis (%s): %d PutRecords calls, %d Kinesis records, %d bytes (%.0f bytes per record)\n",
				s.name, s.stats.PutRecordsCalls, s.stats.Records, s.stats.Bytes, float64(s.stats.Bytes)/float64(s.stats.Records))
		}
	}
	return nil
}

// server is a handler served on a loopback port, with what to close after.
type server struct {
	addr  string
	srv   *http.Server
	after func() error
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &server{addr: ln.Addr().String(), srv: srv}, nil
}

func (s *server) close() {
	s.srv.Close()
	if s.after != nil {
		if err := s.after(); err != nil {
			fmt.Fprintf(os.Stderr, "ingestbench: %v\n", err)
		}
	}
}

// serveProducer serves the ingest handler in front of a fresh producer and
// in-memory stream; closing the server closes the producer.
func serveProducer(ctx context.Context, c benchConfig) (*server, *kinesisfake.Stream, error) {
	stream, err := kinesisfake.New(kinesisfake.Config{StreamName: "bench", Shards: c.shards, Latency: c.latency})
	if err != nil {
		return nil, nil, err
	}
	producer, err := kpl.New(kpl.Config{
		StreamName:      "bench",
		MaxBufferedTime: c.linger,
		Logger:          slog.New(slog.DiscardHandler),
	}, stream)

	if err != nil {
		return nil, nil, err
	}
	if err := producer.Start(ctx); err != nil {
		return nil, nil, err
	}
	h, err := ingest.New(producer, ingest.Config{})
	if err != nil {
		return nil, nil, err
	}
	s, err := serve(h)
	if err != nil {
		return nil, nil, err
	}
	s.after = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := producer.Close(ctx); err != nil {
			return fmt.Errorf("close producer: %w", err)
		}
		return nil
	}
	return s, stream, nil
}

// bareRequest is the same JSON object the ingest handler decodes.
type bareRequest struct {
	Data            json.RawMessage `json:"data"`
	PartitionKey    *string         `json:"partitionKey"`
	ExplicitHashKey *string         `json:"explicitHashKey"`
}

// bareHandler decodes the request like the ingest handler does and answers
// at once: the cost of HTTP and JSON alone.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var req bareRequest
	if err := dec.Decode(&req); err != nil || len(req.Data) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"buffered":true}` + "\n"))
}
