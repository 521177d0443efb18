package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	consumersettings "github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/ingest"
	producersettings "github.com/streamproc/streamproc/services/producer/settings"
)

// config is what the flags set.
type config struct {
	// Port is the producer's port on 127.0.0.1.
	Port int
	// Shards is the shard count of the stream when it is created.
	Shards int
	// Stream names the Kinesis stream.
	Stream string
	// Dir holds bin/ (the built services) and logs/.
	Dir string
	// Consumers is the number of consumer workers; they share the stream's leases.
	Consumers int
}

// pipeline describes a running local pipeline; tests read it through onReady.
type pipeline struct {
	emulators   *emulator.Emulators
	producerURL string
	services    []*service
}

// applicationName names the consumers' lease table.
const applicationName = "local-consumer"

// stopTimeout bounds each service's shutdown after SIGTERM; the producer's own default stop timeout is below it.
const stopTimeout = producersettings.DefaultStopTimeout + 5*time.Second

// run starts the pipeline, reports it on out, and stops it all when ctx is done or a service exits by itself.
// onReady, if not nil, is called once everything serves.
func run(ctx context.Context, cfg config, out io.Writer, onReady ...func(pipeline)) (err error) {
	binDir := filepath.Join(cfg.Dir, "bin")
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}

	fmt.Fprintln(out, "building the services ...")
	producerBin, err := buildService(ctx, binDir, "producer")
	if err != nil {
		return err
	}
	consumerBin, err := buildService(ctx, binDir, "consumer")
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "starting the emulators ...")
	emuLog, err := os.Create(filepath.Join(logDir, "emulators.log"))
	if err != nil {
		return fmt.Errorf("emulator log: %w", err)
	}
	defer emuLog.Close()
	emu, err := emulator.Start(ctx, emulator.Options{Kinesis: true, DynamoDB: true, Output: emuLog})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := emu.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	if err := createStream(ctx, emu.KinesisClient(), cfg.Stream, cfg.Shards); err != nil {
		return err
	}

	p := pipeline{emulators: emu, producerURL: "http://127.0.0.1:" + strconv.Itoa(cfg.Port)}
	exited := make(chan *service, 1)
	defer func() {
		for i := len(p.services) - 1; i >= 0; i-- {
			if stopErr := p.services[i].stop(stopTimeout); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	producer, err := startService("producer", producerBin, localAWSEnv(
		producersettings.EnvStreamName+"="+cfg.Stream,
		producersettings.EnvKinesisEndpoint+"="+emu.KinesisEndpoint,
		producersettings.EnvListenHost+"=127.0.0.1",
		producersettings.EnvPort+"="+strconv.Itoa(cfg.Port),
		producersettings.EnvMetricsInterval+"=10s",
	), filepath.Join(logDir, "producer.log"), exited)
	if err != nil {
		return err
	}
	p.services = append(p.services, producer)
	if err := waitHealthy(ctx, p.producerURL+ingest.PathHealthcheck, producer); err != nil {
		return err
	}

	for i := 1; i <= cfg.Consumers; i++ {
		name := fmt.Sprintf("consumer-%d", i)
		consumer, err := startService(name, consumerBin, localAWSEnv(
			consumersettings.EnvStreamName+"="+cfg.Stream,
			consumersettings.EnvApplicationName+"="+applicationName,
			consumersettings.EnvReadMode+"=polling",
			consumersettings.EnvKinesisEndpoint+"="+emu.KinesisEndpoint,
			consumersettings.EnvDynamoDBEndpoint+"="+emu.DynamoDBEndpoint,
			consumersettings.EnvWorkerID+"="+name,
		), filepath.Join(logDir, name+".log"), exited)
		if err != nil {
			return err
		}
		p.services = append(p.services, consumer)
	}

	printBanner(out, cfg, p, logDir)
	for _, f := range onReady {
		f(p)
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstopping: services first (the producer flushes its buffer), then the emulators ...")
		return nil
	case s := <-exited:
		return fmt.Errorf("%s exited on its own (%v); see its log", s.name, s.exitErr())
	}
}

// localAWSEnv is the environment of a service run against the emulators: dummy credentials and the emulators'
// region, so nothing from the user's AWS profile is used or needed.
func localAWSEnv(vars ...string) []string {
	env := append(os.Environ(),
		"AWS_REGION="+emulator.Region,
		"AWS_ACCESS_KEY_ID=local",
		"AWS_SECRET_ACCESS_KEY=local",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
	)
	return append(env, vars...)
}

// createStream creates the stream with shards shards and waits until it is ACTIVE.
func createStream(ctx context.Context, client *kinesis.Client, stream string, shards int) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName:        aws.String(stream),
		ShardCount:        aws.Int32(int32(shards)),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", stream, err)
	}
	waiter := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, time.Minute); err != nil {
		return fmt.Errorf("stream %s did not become active: %w", stream, err)
	}
	return nil
}

// waitHealthy polls url until it answers 200, the service exits, or a minute passes.
func waitHealthy(ctx context.Context, url string, s *service) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become healthy at %s: %w", s.name, url, ctx.Err())
		case <-s.done:
			return fmt.Errorf("%s exited while starting (%v); see its log", s.name, s.exitErr())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printBanner(out io.Writer, cfg config, p pipeline, logDir string) {
	fmt.Fprintf(out, `
The pipeline runs locally.
  stream       %s (%d shards) on kinesis-local at %s
  producer     %s  (logs and EMF metrics: %s)
  consumers    %d workers sharing the lease table %s; each processed record is one JSON line in %s
  emulators    logs: %s

Send a record (the blog's request, pointed at the local URL):
  curl -d '{"data":"This is a testing record"}' -H "Content-Type: application/json" -X POST %s/

Ctrl-C stops everything this command started.
`, cfg.Stream, cfg.Shards, p.emulators.KinesisEndpoint, p.producerURL, filepath.Join(logDir, "producer.log"),
		cfg.Consumers, applicationName, filepath.Join(logDir, "consumer-N.log"),
		filepath.Join(logDir, "emulators.log"), p.producerURL)
}
