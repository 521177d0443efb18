package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/local/pipeline"
)

// run starts the pipeline, reports it on out, and stops it all when ctx is done or a service exits by itself.
// On a terminal the status line is redrawn in place. onReady, if not nil, is called once everything serves.
func run(ctx context.Context, cfg pipeline.Config, out io.Writer, terminal bool, onReady ...func(*pipeline.Pipeline)) (err error) {
	fmt.Fprintln(out, "building the services and starting the emulators ...")
	p, err := pipeline.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "\nstopping: consumers, then the producer (it flushes its buffer), then the emulators ...")
		if stopErr := p.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	printBanner(out, p)
	for _, f := range onReady {
		f(p)
	}

	every := statusLineEvery
	if terminal {
		every = statusEvery
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-p.Failed():
			return err
		case <-ticker.C:
			s, err := p.Status(ctx)
			line := s.String()
			if err != nil {
				line = "status unavailable: " + err.Error()
			}
			if terminal {
				fmt.Fprintf(out, "\r\033[K%s", line)
			} else {
				fmt.Fprintf(out, "%s %s\n", time.Now().Format(time.TimeOnly), line)
			}
		}
	}
}

func printBanner(out io.Writer, p *pipeline.Pipeline) {
	cfg := p.Config()
	emu := p.Emulators()
	autoscale := "every " + cfg.AutoscaleInterval.String()
	if cfg.AutoscaleInterval < 0 {
		autoscale = "timer off"
	}
	consumerLog := filepath.Join(p.LogDir(), "consumer-N.log")
	processing := "each processed record is one JSON line in " + consumerLog
	load := fmt.Sprintf("Send load and check that every record arrives:\n  go run ./services/loadgen -url %s -rate 500 -duration 30s -verify-logs '%s'",
		p.ProducerURL(), filepath.Join(p.LogDir(), "consumer-*.log"))
	if p.LakeEnabled() {
		processing, load = lakeBanner(p)
	}
	if multilang := cmp.Or(cfg.MultiLangCommand, cfg.PropertiesFile); multilang != "" {
		processing = fmt.Sprintf("each runs the MultiLang record processor of %s per shard; its stderr lines and the workers' logs are in %s", multilang, consumerLog)
		load = fmt.Sprintf("Send load:\n  go run ./services/loadgen -url %s -rate 500 -duration 30s", p.ProducerURL())
	}
	dashboard := ""
	if url := p.DashboardURL(); url != "" {
		dashboard = "Watch it live (the CloudWatch dashboard's twin): " + url + "\n\n"
	}
	fmt.Fprintf(out, `
The pipeline runs locally.
  stream       %s (%d shards) on kinesis-local at %s
  producer     %s  (logs and EMF metrics: %s)
  consumers    %d %s workers sharing the lease table %s; %s
  autoscaler   %s on the stream metrics published to the CloudWatch emulator at %s (decisions: %s)
  emulators    logs: %s

%sSend a record (the blog's request, pointed at the local URL):
  curl -d '{"data":"This is a testing record"}' -H "Content-Type: application/json" -X POST %s/

%s

Ctrl-C stops everything this command started.
`, cfg.Stream, cfg.Shards, emu.KinesisEndpoint,
		p.ProducerURL(), filepath.Join(p.LogDir(), "producer.log"),
		cfg.Consumers, cfg.ReadMode, pipeline.ApplicationName, processing,
		autoscale, emu.CloudWatchEndpoint, filepath.Join(p.LogDir(), "autoscaler.log"),
		filepath.Join(p.LogDir(), "emulators.log"), dashboard, p.ProducerURL(), load)
}

// lakeBanner says where the workers land the records (the S3 sink on moto), how to read them back, and how to send
// load verified against the objects.
func lakeBanner(p *pipeline.Pipeline) (processing, load string) {
	ep := p.S3Endpoint()
	processing = fmt.Sprintf("they land the records exactly once in s3://%s/%s/ on the S3 emulator at %s (objects flushed every %s)\n"+
		"               read them: go run ./services/s3sink/cmd/lakecat -endpoint %s -bucket %s [-list]",
		pipeline.LakeBucket, settings.DefaultS3Prefix, ep, p.Config().LakeMaxObjectAge, ep, pipeline.LakeBucket)
	load = fmt.Sprintf("Send load and check that every record landed once:\n  go run ./services/loadgen -url %s -rate 500 -duration 30s -verify-s3 %s/%s/ -s3-endpoint %s",
		p.ProducerURL(), pipeline.LakeBucket, settings.DefaultS3Prefix, ep)
	return processing, load
}
