// Command loadgen sends records to the producer's HTTP API (the stack's ALB output or the local pipeline) at a target
// rate or as fast as it answers, for a duration or a number of records, with a number of concurrent senders, a
// payload size, and single (POST /) or batch (POST /records) requests. It shows a live progress line (sent, rate,
// errors, p50/p99 request latency) and ends with a summary, also as JSON with -json.
//
// With -verify-logs it checks the consumers' output (the local run's .local/logs/consumer-*.log): every record
// carries a unique id, its partition key and its sequence within that key, and the check reports the acknowledged
// records that are missing, duplicated or out of order per partition key, and the end-to-end latency from send to
// the consumer's line. It exits with status 1 when an acknowledged record is missing or out of order.
//
// With -verify-s3 BUCKET[/PREFIX] it checks the objects the consumers' S3 sink landed instead (each object is read
// once, when it appears; -s3-endpoint points at an emulator, as make local's moto): the same report, order checked
// within each object, latency up to the object's flush.
//
// With -local fanout|polling it starts a private local pipeline first (as `make local` does, on a free port, in
// .local/loadgen-<mode>), verifies against it and stops it: one command that measures the pipeline on this machine.
// -local-sink s3 makes its workers land the records in its S3 emulator, and verifies against the objects.
//
//	go run ./services/loadgen -url http://127.0.0.1:8080 -rate 500 -duration 30s -verify-logs '.local/logs/consumer-*.log'
//	go run ./services/loadgen -url https://<alb-dns> -rate 2000 -duration 5m -concurrency 64 -batch 50
//	go run ./services/loadgen -local fanout -records 20000 -concurrency 16 -batch 50 -json -
//	go run ./services/loadgen -url http://127.0.0.1:8080 -records 5000 -verify-s3 local-lake/records/ -s3-endpoint http://127.0.0.1:PORT
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/loadgen/load"
	"github.com/streamproc/streamproc/services/loadgen/verify"
	"github.com/streamproc/streamproc/services/local/pipeline"
)

// options are the command's flags beyond load.Config.
type options struct {
	load        load.Config
	jsonPath    string
	verifyLogs  string
	verifyWait  time.Duration
	local       string
	localShards int
	localSink   string
	verifyS3    string
	s3Endpoint  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	ok, err := run(ctx, opts, os.Stdout, os.Stderr, isTerminal(os.Stderr))
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.load.URL, "url", "http://127.0.0.1:8080", "the producer's base URL (the stack's ALB output, or the local pipeline)")
	fs.Float64Var(&o.load.Rate, "rate", 0, "records per second (0: as fast as the producer answers)")
	fs.IntVar(&o.load.Records, "records", 0, "stop after this many records (0: no limit)")
	fs.DurationVar(&o.load.Duration, "duration", 0, "stop after this long (0: no limit); -records or -duration is required")
	fs.IntVar(&o.load.Concurrency, "concurrency", load.DefaultConcurrency, "concurrent senders, one request in flight each")
	fs.IntVar(&o.load.PayloadBytes, "payload", load.DefaultPayloadBytes, "padding bytes per record, on top of ~100 bytes of id fields")
	fs.IntVar(&o.load.Batch, "batch", load.DefaultBatch, "records per request: 1 sends POST /, more POST /records (max 500)")
	fs.IntVar(&o.load.Keys, "keys", 0, "partition keys, at least -concurrency (0: 64 or -concurrency)")
	fs.DurationVar(&o.load.RequestTimeout, "timeout", load.DefaultRequestTimeout, "timeout of each request")
	fs.StringVar(&o.jsonPath, "json", "", "also write the summary as JSON to this file ('-': stdout)")
	fs.StringVar(&o.verifyLogs, "verify-logs", "", "glob of the consumers' output to verify against, such as '.local/logs/consumer-*.log'")
	fs.DurationVar(&o.verifyWait, "verify-wait", 2*time.Minute, "how long to wait after the load for the acknowledged records to be processed")
	fs.StringVar(&o.local, "local", "", "start a private local pipeline with fanout or polling consumers, send to it and verify")
	fs.IntVar(&o.localShards, "local-shards", pipeline.DefaultShards, "shards of the private local pipeline's stream")
	fs.StringVar(&o.localSink, "local-sink", pipeline.SinkLog, "what the private pipeline's workers do with the records: log (JSON lines) or s3 (objects in its S3 emulator, verified there)")
	fs.StringVar(&o.verifyS3, "verify-s3", "", "`bucket/prefix` of the S3 sink's objects to verify against, such as local-lake/records/")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 emulator URL for -verify-s3 (empty: AWS, with the usual credentials)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fail := func(msg string) (options, error) {
		fmt.Fprintln(errOut, msg)
		return o, errors.New(msg)
	}
	if fs.NArg() > 0 {
		return fail(fmt.Sprintf("unexpected arguments: %v", fs.Args()))
	}
	if o.load.Records <= 0 && o.load.Duration <= 0 {
		return fail("set -records or -duration (or both)")
	}
	if o.local != "" && o.local != pipeline.ReadModeFanOut && o.local != pipeline.ReadModePolling {
		return fail(fmt.Sprintf("-local must be %s or %s, got %q", pipeline.ReadModeFanOut, pipeline.ReadModePolling, o.local))
	}
	if o.localSink != pipeline.SinkLog && o.localSink != pipeline.SinkS3 {
		return fail(fmt.Sprintf("-local-sink must be %s or %s, got %q", pipeline.SinkLog, pipeline.SinkS3, o.localSink))
	}
	if o.verifyS3 != "" && o.verifyLogs != "" {
		return fail("set -verify-logs or -verify-s3, not both")
	}
	return o, nil
}

// summary is the JSON summary.
type summary struct {
	Load   load.Result    `json:"load"`
	Verify *verify.Report `json:"verify,omitempty"`
	// Local describes the private pipeline of -local.
	Local *localInfo `json:"local,omitempty"`
}

type localInfo struct {
	ReadMode  string `json:"read_mode"`
	Shards    int    `json:"shards"`
	Consumers int    `json:"consumers"`
}

// run sends the load, verifies if asked, and prints the summary; ok is false when verification found a loss or
// disorder, or nothing was acknowledged.
func run(ctx context.Context, o options, out, progressOut io.Writer, terminal bool) (ok bool, err error) {
	var sum summary
	if o.local != "" {
		p, err := startLocal(ctx, o)
		if err != nil {
			return false, err
		}
		defer func() {
			fmt.Fprintln(progressOut, "stopping the local pipeline ...")
			err = errors.Join(err, p.Stop())
		}()
		cfg := p.Config()
		o.load.URL = p.ProducerURL()
		o.verifyLogs = filepath.Join(p.LogDir(), "consumer-*.log")
		if p.LakeEnabled() {
			o.verifyLogs, o.verifyS3, o.s3Endpoint = "", pipeline.LakeBucket+"/"+settings.DefaultS3Prefix+"/", p.S3Endpoint()
		}
		sum.Local = &localInfo{ReadMode: cfg.ReadMode, Shards: cfg.Shards, Consumers: cfg.Consumers}
	}
	var v *verification
	if o.verifyLogs != "" || o.verifyS3 != "" {
		if o.load.RunID == "" {
			o.load.RunID = fmt.Sprintf("%x", time.Now().UnixNano())
		}
		follower, err := newFollower(ctx, o)
		if err != nil {
			return false, err
		}
		v = startVerification(ctx, follower, pollInterval(o))
		o.load.OnAck = v.acknowledged
		defer func() { err = errors.Join(err, v.stop()) }()
	}
	if sum.Load, err = sendLoad(ctx, o.load, out, progressOut, terminal); err != nil {
		return false, err
	}
	ok = sum.Load.Acked > 0
	if v != nil {
		fmt.Fprintf(progressOut, "waiting up to %s for the %d acknowledged records in %s ...\n", o.verifyWait, v.ackedCount(), cmp.Or(o.verifyLogs, "s3://"+o.verifyS3))
		report, err := v.check(ctx, o.verifyWait)
		if err != nil {
			return false, err
		}
		sum.Verify = &report
		fmt.Fprintf(out, "verify: %s\n", report)
		if len(report.Keys) > 0 {
			fmt.Fprint(out, report.DescribeKeys(10))
		}
		ok = ok && report.OK()
	}
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, out, sum); err != nil {
			return false, err
		}
	}
	return ok, nil
}

// sendLoad runs the load, showing progress every second, and prints its result.
func sendLoad(ctx context.Context, cfg load.Config, out, progressOut io.Writer, terminal bool) (load.Result, error) {
	progress := func(p load.Progress) {
		if terminal {
			fmt.Fprintf(progressOut, "\r\033[K%s", p)
		} else {
			fmt.Fprintln(progressOut, p)
		}
	}
	r, err := load.Run(ctx, cfg, time.Second, progress)
	if err != nil {
		return r, err
	}
	if terminal {
		fmt.Fprintln(progressOut)
	}
	fmt.Fprintf(out, "load: %d records in %d requests over %.1f s: %d acknowledged (%.0f/s), %d failed %v; request latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.Records, r.Requests, r.ElapsedSeconds, r.Acked, r.AckedPerSecond, r.Failed, r.Statuses, r.LatencyP50Millis, r.LatencyP99Millis, r.LatencyMaxMillis)
	return r, nil
}

// verification follows the consumers' output while the load runs and records what the producer acknowledged, so
// that check can tell which acknowledged records were delivered, how often and in which order.
type verification struct {
	follower *verify.Follower
	interval time.Duration
	stop     func() error

	mu    sync.Mutex
	acked []load.Acked
}

// newFollower follows what the options name for the run's records: the consumers' logs (-verify-logs) or the S3
// sink's objects (-verify-s3, polled every second, not as often as the logs).
func newFollower(ctx context.Context, o options) (*verify.Follower, error) {
	if o.verifyS3 == "" {
		return verify.NewFollower(o.verifyLogs, o.load.RunID)
	}
	bucket, prefix, _ := strings.Cut(o.verifyS3, "/")
	var client *s3.Client
	if o.s3Endpoint != "" {
		client = emulator.NewS3Client(emulator.LocalConfig(), o.s3Endpoint)
	} else {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		client = s3.NewFromConfig(cfg)
	}
	return verify.NewObjectFollower(client, bucket, prefix, o.load.RunID), nil
}

// pollInterval is how often the verification looks again: log files are cheap to read, a bucket listing is not.
func pollInterval(o options) time.Duration {
	if o.verifyS3 != "" {
		return 500 * time.Millisecond
	}
	return 10 * time.Millisecond
}

// startVerification starts following for the records of the run, every interval.
func startVerification(ctx context.Context, follower *verify.Follower, interval time.Duration) *verification {
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- follower.Run(followCtx, interval) }()
	return &verification{follower: follower, interval: interval, stop: func() error {
		stopFollowing()
		return <-followed
	}}
}

// acknowledged records a record the producer acknowledged (load.Config.OnAck).
func (v *verification) acknowledged(a load.Acked) {
	v.mu.Lock()
	v.acked = append(v.acked, a)
	v.mu.Unlock()
}

func (v *verification) ackedCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.acked)
}

// check waits up to wait for every acknowledged record to be delivered, then reports what was missing, duplicated
// or out of order.
func (v *verification) check(ctx context.Context, wait time.Duration) (verify.Report, error) {
	v.mu.Lock()
	acked := slices.Clone(v.acked)
	v.mu.Unlock()
	ids := make([]string, len(acked))
	for i, a := range acked {
		ids[i] = a.ID
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := v.follower.Await(waitCtx, ids, v.interval); err != nil {
		return verify.Report{}, err
	}
	return verify.Check(acked, v.follower.Deliveries()), nil
}

func writeJSON(path string, stdout io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// startLocal starts the private pipeline of -local on a free port.
func startLocal(ctx context.Context, o options) (*pipeline.Pipeline, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	fmt.Fprintf(os.Stderr, "starting a local pipeline (%s consumers) ...\n", o.local)
	return pipeline.Start(ctx, pipeline.Config{
		Port: port, Shards: o.localShards, ReadMode: o.local, Dir: filepath.Join(pipeline.DefaultDir, "loadgen-"+o.local),
		Sink: o.localSink,
		// The load must not be resharded under the measurement.
		AutoscaleInterval: -1,
		DashboardPort:     -1,
	})
}

// isTerminal reports whether f is a terminal, where the progress line is redrawn in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
