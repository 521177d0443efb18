package kcl

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
)

// initialResponseShim is a test-only http.RoundTripper for kinesis-local's SubscribeToShard: the emulator omits the
// `initial-response` event that aws-sdk-go-v2 reads before the first record event, so the shim prepends one to the
// response body. Production code never uses it: against AWS the event is there.
type initialResponseShim struct {
	next http.RoundTripper
}

func (s initialResponseShim) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		return resp, err
	}
	var buf bytes.Buffer
	msg := eventstream.Message{Payload: []byte("{}")}
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue("initial-response"))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue("application/json"))
	if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(&buf, resp.Body), resp.Body}
	return resp, nil
}
