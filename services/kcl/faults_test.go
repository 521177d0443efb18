package kcl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// hungSubscribeKinesis is kinesis-local for every call but SubscribeToShard, which goes to a server that accepts the
// request and never answers.
type hungSubscribeKinesis struct {
	*kinesis.Client
	hung *kinesis.Client
}

func (k hungSubscribeKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	return k.hung.SubscribeToShard(ctx, in, optFns...)
}

// startHungServer starts a 127.0.0.1 server that holds every request open until the client goes away or the test
// ends; arrived receives one value per request.
func startHungServer(t *testing.T) (url string, arrived <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 16)
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case ch <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(quit) })
		srv.Close()
	})
	return srv.URL, ch
}

func TestHungSubscribeToShardIsCancelled(t *testing.T) {
	tests := map[string]struct {
		// stop ends the worker; it returns once Run must have returned.
		stop func(t *testing.T, tw *testWorker)
	}{
		"graceful shutdown": {stop: func(t *testing.T, tw *testWorker) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tw.w.Shutdown(ctx); err != nil {
				t.Errorf("shutdown with SubscribeToShard hung: %v", err)
			}
		}},
		"short shutdown, then cancel": {stop: func(t *testing.T, tw *testWorker) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_ = tw.w.Shutdown(ctx) // may time out: the run context is cancelled next
			tw.cancel()
		}},
		"cancel": {stop: func(t *testing.T, tw *testWorker) { tw.cancel() }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := testKinesis(t)
			stream := createStream(t, kc, 1)
			url, arrived := startHungServer(t)
			hung := testEmulators.Get(t).KinesisClient(func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
			cfg := fastConfig(stream, uniqueName("app"), "worker-a")
			cfg.ReadMode, cfg.ConsumerARN = ReadModeFanOut, "arn:aws:kinesis:us-east-1:000000000000:stream/"+stream+"/consumer/app:1"
			cfg.NewProcessor = func() Processor { return &testProcessor{worker: cfg.WorkerID, c: newCollector()} }
			w, err := New(cfg, hungSubscribeKinesis{Client: kc, hung: hung}, testDynamo(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			tw := &testWorker{id: cfg.WorkerID, w: w, cancel: cancel, exited: make(chan struct{})}
			go func() {
				tw.err = w.Run(ctx)
				close(tw.exited)
			}()
			select {
			case <-arrived:
			case <-time.After(20 * time.Second):
				cancel()
				t.Fatal("no SubscribeToShard call within 20 s")
			}
			tc.stop(t, tw)
			select {
			case <-tw.exited:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return 10 s after the stop while SubscribeToShard hung")
			}
			cancel()
		})
	}
}
