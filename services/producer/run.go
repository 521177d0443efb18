package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/producer/settings"
	"github.com/streamproc/streamproc/services/telemetry"
)

// runOptions are what tests change about run's surroundings.
type runOptions struct {
	// stdout receives the JSON logs and the EMF metric lines.
	stdout io.Writer
	// listener, if set, is served instead of listening on Settings.Port.
	listener net.Listener
	// kinesisHTTPClient, if set, carries the Kinesis calls (tests put a
	// fault-injecting transport in it).
	kinesisHTTPClient aws.HTTPClient
	// onServing, if set, is called once the server is serving.
	onServing func(addr net.Addr)
}

// Timeouts of the HTTP server against slow or idle clients.
const (
	readHeaderTimeout = 10 * time.Second
	// idleTimeout is above the ALB's default idle timeout (60 s), so the load
	// balancer, not the task, closes idle keep-alive connections.
	idleTimeout = 75 * time.Second
)

// run serves until ctx is done, then shuts down in order: health check 503
// for the drain window, stop accepting, finish the requests in flight,
// flush the producer. It returns an error when it cannot start or when
// records were lost because the stop timeout passed.
func run(ctx context.Context, s settings.Settings, opts runOptions) error {
	out := telemetry.NewSyncWriter(opts.stdout)
	stream := s.Producer.StreamName
	logger := telemetry.NewLogger(out, s.LogLevel).With(telemetry.LogKeyStream, stream)
	for _, w := range s.Warnings {
		logger.Warn("configuration: " + w)
	}
	mcfg := s.Metrics
	mcfg.Dimensions = append(mcfg.Dimensions, telemetry.Dimension{Name: ingest.DimensionStream, Value: stream})
	metrics, err := telemetry.NewMetrics(out, mcfg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	client, err := newKinesisClient(ctx, s, opts.kinesisHTTPClient)
	if err != nil {
		return err
	}
	pcfg := s.Producer
	pcfg.Logger = logger
	pcfg.Metrics = metrics
	producer, err := kpl.New(pcfg, client)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	if err := producer.Start(ctx); err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	handler, err := ingest.New(producer, ingest.Config{Metrics: metrics, Logger: logger})
	if err != nil {
		return errors.Join(fmt.Errorf("ingest handler: %w", err), closeProducer(producer, s.ShutdownTimeout))
	}
	ln := opts.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", net.JoinHostPort(s.ListenHost, strconv.Itoa(s.Port))); err != nil {
			return errors.Join(fmt.Errorf("listen: %w", err), closeProducer(producer, s.ShutdownTimeout))
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// Metrics are written until the very end, the final flush included.
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	metricsDone := make(chan struct{})
	go func() {
		defer close(metricsDone)
		_ = metrics.Run(metricsCtx) // a failed write loses an interval, never the service
	}()
	defer func() {
		stopMetrics()
		<-metricsDone
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("serving", "addr", ln.Addr().String())
	if opts.onServing != nil {
		opts.onServing(ln.Addr())
	}

	select {
	case err := <-serveErr:
		return errors.Join(fmt.Errorf("serve: %w", err), closeProducer(producer, s.ShutdownTimeout))
	case <-ctx.Done():
	}
	return shutdown(logger, s, handler, srv, producer)
}

// shutdown runs the stop sequence within s.ShutdownTimeout.
func shutdown(logger *slog.Logger, s settings.Settings, handler *ingest.Handler, srv *http.Server, producer *kpl.Producer) error {
	deadline := time.Now().Add(s.ShutdownTimeout)
	// grace is kept back from the request phase so that, if it times out,
	// the requests the producer then fails can still be answered.
	grace := min(time.Second, s.ShutdownTimeout/10)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	logger.Info("draining", "drain_window", s.DrainWindow.String(), "shutdown_timeout", s.ShutdownTimeout.String())
	handler.Drain()
	drain := time.NewTimer(s.DrainWindow)
	select {
	case <-drain.C:
	case <-ctx.Done():
	}
	drain.Stop()

	handler.StopAccepting()
	requestsCtx, cancelRequests := context.WithDeadline(ctx, deadline.Add(-grace))
	defer cancelRequests()
	shutdownErr := srv.Shutdown(requestsCtx)

	closeErr := producer.Close(requestsCtx)
	if shutdownErr != nil {
		// Requests were still waiting: Close has just failed their records,
		// so give their handlers the grace to answer 503, then cut the rest.
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		shutdownErr = fmt.Errorf("requests still running at the stop timeout: %w", shutdownErr)
	}
	if closeErr != nil {
		closeErr = fmt.Errorf("flush producer: %w", closeErr)
	}
	if err := errors.Join(shutdownErr, closeErr); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// closeProducer flushes and stops the producer after a failed start.
func closeProducer(p *kpl.Producer, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}

// newKinesisClient builds the client from the SDK's default configuration,
// pointed at s.KinesisEndpoint when set.
func newKinesisClient(ctx context.Context, s settings.Settings, httpClient aws.HTTPClient) (*kinesis.Client, error) {
	cfg, err := s.AWS.Config(ctx)
	if err != nil {
		return nil, err
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if s.KinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(s.KinesisEndpoint)
		}
		if httpClient != nil {
			o.HTTPClient = httpClient
		}
	}), nil
}
