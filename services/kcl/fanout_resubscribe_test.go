package kcl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamproc/streamproc/internal/eventually"
)

// refusingSubscribeTransport answers the first SubscribeToShard of every shard with a 400 ResourceInUseException (a
// previous subscription still open) and counts the SubscribeToShard calls per shard.
type refusingSubscribeTransport struct {
	next http.RoundTripper

	mu    sync.Mutex
	calls map[string]int
}

func (rt *refusingSubscribeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		return rt.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	_ = req.Body.Close()
	var in struct{ ShardId string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.calls[in.ShardId]++
	first := rt.calls[in.ShardId] == 1
	rt.mu.Unlock()
	if first {
		msg := `{"__type":"ResourceInUseException","message":"another subscription to ` + in.ShardId + ` is open"}`
		return &http.Response{
			StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {"ResourceInUseException"}},
			Body:          io.NopCloser(strings.NewReader(msg)),
			ContentLength: int64(len(msg)),
			Request:       req,
		}, nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return rt.next.RoundTrip(req)
}

// checkCalls returns an error unless every shard of shards had at least want SubscribeToShard calls.
func (rt *refusingSubscribeTransport) checkCalls(shards []ktypes.Shard, want int) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, s := range shards {
		if n := rt.calls[aws.ToString(s.ShardId)]; n < want {
			return fmt.Errorf("%s: %d SubscribeToShard calls, want at least %d", aws.ToString(s.ShardId), n, want)
		}
	}
	return nil
}

// TestFanOutResubscribesAfterRefusalAndInterval reads by fan-out through a first refused subscription and across
// resubscriptions at the interval: every record arrives once.
func TestFanOutResubscribesAfterRefusalAndInterval(t *testing.T) {
	kc := testKinesis(t)
	stream := createStream(t, kc, 2)
	arn := registerConsumer(t, kc, stream)
	rt := &refusingSubscribeTransport{next: http.DefaultTransport, calls: map[string]int{}}
	reader := kinesis.New(kc.Options(), func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: rt} })
	recs := makeRecords(3000, 50, 100)
	putAggregated(t, kc, stream, recs[:1500], 100)
	c := newCollector()
	cfg := fastConfig(stream, uniqueName("app"), "worker-a")
	cfg.ReadMode, cfg.ConsumerARN = ReadModeFanOut, arn
	// kinesis-local keeps a closed subscription for about 4 s and refuses new ones meanwhile (with a
	// ResourceInUseException event), so the interval is longer than that hold: each resubscription is first refused
	// a few times, which exercises the back-off too.
	cfg.ResubscribeInterval = 5 * time.Second
	cfg.MaxRetryBackoff = time.Second
	startWorker(t, cfg, reader, c, nil)
	c.waitFor(t, 1500, 60*time.Second)
	// Past a resubscription, with nothing to read: one refused call, the first subscription, and the next one.
	shards := openShards(t, kc, stream)
	eventually.Succeeds(t, 30*time.Second, func() error { return rt.checkCalls(shards, 3) })
	putAggregated(t, kc, stream, recs[1500:], 100)
	c.waitFor(t, len(recs), 60*time.Second)
	c.checkComplete(t, recs)
	_, dups := c.distinct()
	// One refused, one first subscription, and at least one resubscription after the interval.
	if err := rt.checkCalls(shards, 3); err != nil {
		t.Error(err)
	}
	rt.mu.Lock()
	calls := maps.Clone(rt.calls)
	rt.mu.Unlock()
	// Records a resubscription sees again (from the continuation) are dropped by the reader: one worker, no lease
	// moves, so nothing is delivered twice.
	if dups != 0 {
		t.Errorf("%d duplicates, want 0", dups)
	}
	t.Logf("SubscribeToShard calls per shard %v (first refused with ResourceInUseException, resubscribe every %v); %d records, %d duplicates",
		calls, cfg.ResubscribeInterval, len(recs), dups)
}
