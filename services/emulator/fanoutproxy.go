package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
)

// subscribeToShardTarget ends the X-Amz-Target header of a SubscribeToShard request ("Kinesis_20131202.SubscribeToShard").
const subscribeToShardTarget = ".SubscribeToShard"

// FanOutProxy is a reverse proxy on 127.0.0.1 in front of kinesis-local that makes its enhanced fan-out usable by
// aws-sdk-go-v2: kinesis-local answers SubscribeToShard without the `initial-response` event the SDK reads before the
// first record event, so the proxy writes one at the start of every successful SubscribeToShard response. Every other
// request and response passes through untouched.
//
// It lets the services run unchanged against the emulator: they are given the proxy's URL as their Kinesis endpoint,
// and no emulator workaround sits in their code path. Against AWS the event is there and no proxy is used.
type FanOutProxy struct {
	// URL is the proxy's address, such as http://127.0.0.1:41235, to use as a Kinesis endpoint.
	URL string

	server   *http.Server
	listener net.Listener
	served   chan error
}

// StartFanOutProxy starts a FanOutProxy for the Kinesis endpoint target (kinesis-local's plain-HTTP URL) on a free
// port of 127.0.0.1. Close stops it.
func StartFanOutProxy(target string) (*FanOutProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("emulator: fan-out proxy target %q: want an http:// URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("emulator: fan-out proxy listen: %w", err)
	}
	p := &FanOutProxy{
		URL:      "http://" + ln.Addr().String(),
		listener: ln,
		served:   make(chan error, 1),
		server:   &http.Server{Handler: NewFanOutProxyHandler(u), ReadHeaderTimeout: 10 * time.Second},
	}
	go func() { p.served <- p.server.Serve(ln) }()
	return p, nil
}

// Close stops the proxy at once: open SubscribeToShard streams end, and their readers resubscribe elsewhere or
// stop, as they would after a network failure.
func (p *FanOutProxy) Close() error {
	err := p.server.Close()
	if serveErr := <-p.served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("emulator: close fan-out proxy: %w", err)
	}
	return nil
}

// NewFanOutProxyHandler returns the handler of a FanOutProxy forwarding to target. Responses are flushed as they
// arrive, since a SubscribeToShard response is a stream of events that lasts up to five minutes.
func NewFanOutProxyHandler(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil {
			return // the client went away (a consumer stopped or resubscribed): nobody to answer
		}
		w.WriteHeader(http.StatusBadGateway)
		_, _ = fmt.Fprintf(w, "fan-out proxy: kinesis-local did not answer: %v", err)
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK || !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), subscribeToShardTarget) {
			return nil
		}
		event, err := initialResponseEvent()
		if err != nil {
			return err
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(event), resp.Body), resp.Body}
		// The body is now longer than the emulator said; let the server frame it.
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return nil
	}
	return rp
}

// initialResponseEvent encodes the event-stream message AWS sends first on every SubscribeToShard response: an
// `initial-response` event with an empty JSON object.
func initialResponseEvent() ([]byte, error) {
	var buf bytes.Buffer
	msg := eventstream.Message{Payload: []byte("{}")}
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue("initial-response"))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
		return nil, fmt.Errorf("emulator: encode initial-response event: %w", err)
	}
	return buf.Bytes(), nil
}
