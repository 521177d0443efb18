// Command local runs the streaming pipeline on this machine, with no AWS account (package pipeline does the work):
// the Kinesis, DynamoDB and CloudWatch emulators on 127.0.0.1, a 5-shard stream, the lease table and the fan-out
// consumer, the producer on 127.0.0.1:8080, two consumer workers, and the shard autoscaler every minute on the
// stream metrics the runner publishes from what the producer put. It prints the curl command to try, where each
// process logs, and a live status line.
//
// Ctrl-C (or SIGTERM) stops the services first, so the producer flushes its buffer into the stream, then the
// emulators; every process it started is stopped by its PID.
//
//	go run ./services/local [-port 8080] [-shards 5] [-consumers 2] [-read-mode fanout|polling] [-dir .local]
//	                        [-autoscale-interval 1m] [-min-shards 1] [-max-shards 16] ...
//	                        [-multilang "python3 record_processor.py"] [-properties-file sample.properties]
//
// The workers land the records in an S3 bucket on the emulator (-sink s3, the default; the runner prints how to read
// them back), or write each as a JSON line to their log (-sink log). With -multilang or -properties-file they run a
// MultiLang record processor (any language) instead.
//
// `-h` lists every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamproc/streamproc/services/local/pipeline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	if err := run(ctx, cfg, os.Stdout, isTerminal(os.Stdout)); err != nil {
		fmt.Fprintf(os.Stderr, "local: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (pipeline.Config, error) {
	var cfg pipeline.Config
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.IntVar(&cfg.Port, "port", pipeline.DefaultPort, "port of the producer's HTTP API on 127.0.0.1")
	fs.IntVar(&cfg.Shards, "shards", pipeline.DefaultShards, "shards of the stream when it is created")
	fs.StringVar(&cfg.Stream, "stream", pipeline.DefaultStream, "name of the Kinesis stream")
	fs.StringVar(&cfg.Dir, "dir", pipeline.DefaultDir, "directory for the built services and their logs")
	fs.IntVar(&cfg.Consumers, "consumers", pipeline.DefaultConsumers, "consumer workers")
	fs.StringVar(&cfg.ReadMode, "read-mode", pipeline.ReadModeFanOut, "how the consumers read: fanout (SubscribeToShard) or polling (GetRecords)")
	fs.DurationVar(&cfg.FailoverTime, "failover", 0, "the workers' lease failover time (0: the consumer's default, 10s)")
	fs.DurationVar(&cfg.AutoscaleInterval, "autoscale-interval", pipeline.DefaultAutoscaleInterval, "how often the autoscaler decides (negative: never)")
	fs.IntVar(&cfg.Policy.MinShards, "min-shards", 0, "autoscaler: fewest open shards (0: the policy default, 1)")
	fs.IntVar(&cfg.Policy.MaxShards, "max-shards", 0, "autoscaler: most open shards (0: the policy default, 16)")
	fs.Float64Var(&cfg.Policy.ScaleUpUtilisation, "scale-up-utilisation", 0, "autoscaler: scale up above this share of the shards' write capacity (0: the default, 0.75)")
	fs.Float64Var(&cfg.Policy.TargetUtilisation, "target-utilisation", 0, "autoscaler: size new shard counts for this share (0: the default, 0.70)")
	fs.Float64Var(&cfg.Policy.ScaleDownUtilisation, "scale-down-utilisation", 0, "autoscaler: scale down below this share (0: the default, 0.35)")
	fs.IntVar(&cfg.Policy.ScaleUpMinutes, "scale-up-minutes", 0, "autoscaler: minutes above the scale-up share before scaling up (0: the default, 2)")
	fs.IntVar(&cfg.Policy.ScaleDownMinutes, "scale-down-minutes", 0, "autoscaler: minutes below the scale-down share before scaling down (0: the default, 15)")
	fs.IntVar(&cfg.DashboardPort, "dashboard-port", pipeline.DefaultDashboardPort, "port of the live dashboard on 127.0.0.1 (negative: none)")
	fs.StringVar(&cfg.MultiLangCommand, "multilang", "", "run this MultiLang record processor `command` (any language) in the workers, such as \"python3 services/multilang/samples/record_processor.py\"")
	fs.StringVar(&cfg.Sink, "sink", pipeline.SinkS3, "what the workers do with the records: s3 (objects in the S3 emulator's bucket "+pipeline.LakeBucket+") or log (a JSON line each in their log)")
	fs.StringVar(&cfg.PropertiesFile, "properties-file", "", "start the workers with this MultiLangDaemon properties `file`, as the Java daemon is (the runner's stream, application and endpoints win)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(errOut, "unexpected arguments: %v\n", fs.Args())
		return cfg, errors.New("unexpected arguments")
	}
	checks := []struct {
		bad bool
		msg string
	}{
		{cfg.Shards < 1, fmt.Sprintf("-shards must be at least 1, got %d", cfg.Shards)},
		{cfg.Consumers < 1, fmt.Sprintf("-consumers must be at least 1, got %d", cfg.Consumers)},
		{cfg.Port < 1 || cfg.Port > 65535, fmt.Sprintf("-port must be 1-65535, got %d", cfg.Port)},
		{cfg.ReadMode != pipeline.ReadModeFanOut && cfg.ReadMode != pipeline.ReadModePolling,
			fmt.Sprintf("-read-mode must be %s or %s, got %q", pipeline.ReadModeFanOut, pipeline.ReadModePolling, cfg.ReadMode)},
		{cfg.FailoverTime < 0, fmt.Sprintf("-failover must not be negative, got %v", cfg.FailoverTime)},
		{cfg.AutoscaleInterval == 0, "-autoscale-interval must not be 0 (negative turns the timer off)"},
		{cfg.Sink != pipeline.SinkS3 && cfg.Sink != pipeline.SinkLog, fmt.Sprintf("-sink must be %s or %s, got %q", pipeline.SinkS3, pipeline.SinkLog, cfg.Sink)},
	}
	for _, c := range checks {
		if c.bad {
			fmt.Fprintln(errOut, c.msg)
			return cfg, errors.New(c.msg)
		}
	}
	return cfg, nil
}

// isTerminal reports whether f is a terminal, where the status line is redrawn in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// statusEvery is how often the status line is refreshed on a terminal; elsewhere (a log file) a line is written
// every statusLineEvery.
const (
	statusEvery     = 2 * time.Second
	statusLineEvery = 30 * time.Second
)
