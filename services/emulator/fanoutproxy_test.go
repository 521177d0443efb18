package emulator

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// TestFanOutProxyChangesOnlySuccessfulSubscribeToShard checks the proxy against a recording upstream: the event is
// prepended to a 200 SubscribeToShard response and nothing else is altered.
func TestFanOutProxyChangesOnlySuccessfulSubscribeToShard(t *testing.T) {
	tests := map[string]struct {
		target     string
		status     int
		wantPrefix bool
	}{
		"SubscribeToShard 200":       {target: "Kinesis_20131202.SubscribeToShard", status: 200, wantPrefix: true},
		"SubscribeToShard error":     {target: "Kinesis_20131202.SubscribeToShard", status: 400},
		"GetRecords":                 {target: "Kinesis_20131202.GetRecords", status: 200},
		"PutRecords server error":    {target: "Kinesis_20131202.PutRecords", status: 500},
		"no target (health request)": {status: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN an upstream that echoes the request body and target
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Seen-Target", r.Header.Get("X-Amz-Target"))
				w.WriteHeader(tc.status)
				w.Write(append([]byte("echo:"), body...))
			}))
			defer upstream.Close()
			proxy, err := StartFanOutProxy(upstream.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()

			// WHEN a request goes through the proxy
			req, _ := http.NewRequest(http.MethodPost, proxy.URL+"/", strings.NewReader(`{"k":1}`))
			if tc.target != "" {
				req.Header.Set("X-Amz-Target", tc.target)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			// THEN status, headers and body pass through, with the event in front only where it belongs
			if resp.StatusCode != tc.status || resp.Header.Get("X-Seen-Target") != tc.target {
				t.Fatalf("status %d target %q; want %d %q", resp.StatusCode, resp.Header.Get("X-Seen-Target"), tc.status, tc.target)
			}
			rest := got
			if tc.wantPrefix {
				msg, err := eventstream.NewDecoder().Decode(bytes.NewReader(got), nil)
				if err != nil {
					t.Fatalf("response does not start with an event-stream message: %v", err)
				}
				if h := msg.Headers.Get(":event-type"); h == nil || h.String() != "initial-response" {
					t.Fatalf("first event type = %v; want initial-response", h)
				}
				event, _ := initialResponseEvent()
				rest = got[len(event):]
			}
			if string(rest) != `echo:{"k":1}` {
				t.Errorf("body after the proxy's part = %q; want the upstream's own body", rest)
			}
		})
	}
}

func TestFanOutProxyAnswersBadGatewayWhenTheEmulatorIsDown(t *testing.T) {
	// GIVEN a proxy whose emulator has gone
	upstream := httptest.NewServer(http.NotFoundHandler())
	target := upstream.URL
	upstream.Close()
	proxy, err := StartFanOutProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// WHEN a request arrives, THEN it gets a 502 (the SDK retries it as a server error)
	resp, err := http.Post(proxy.URL+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d; want 502", resp.StatusCode)
	}
}
