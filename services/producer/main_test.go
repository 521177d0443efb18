package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
	"github.com/streamproc/streamproc/services/envconfig"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/ingest/ingesttest"
	"github.com/streamproc/streamproc/services/producer/settings"
	"github.com/streamproc/streamproc/services/telemetry"
)

// The package's tests share one kinesis-local, started on first use.
var (
	emulators = &emulatortest.Shared{Options: emulator.Options{Kinesis: true}}
	streamN   atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(emulators.Run(m)) }

// newStream starts kinesis-local if needed and creates a fresh stream.
func newStream(t *testing.T, shards int32) (*emulator.Emulators, string) {
	t.Helper()
	emu := emulators.Get(t)
	name := fmt.Sprintf("producer-test-%d-%d", os.Getpid(), streamN.Add(1))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := emulator.CreateStream(ctx, emu.KinesisClient(), name, int(shards)); err != nil {
		t.Fatal(err)
	}
	return emu, name
}

// service is run() serving in the background on a loopback port.
type service struct {
	url    string
	cancel context.CancelFunc // what SIGTERM does through signal.NotifyContext
	done   chan error
	out    *telemetry.SyncBuffer
}

func startService(t *testing.T, env map[string]string, httpClient aws.HTTPClient) *service {
	t.Helper()
	s, err := settings.Load(envconfig.Lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &service{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1), out: &telemetry.SyncBuffer{}}
	serving := make(chan struct{})
	go func() {
		svc.done <- run(ctx, s, runOptions{stdout: svc.out, listener: ln, kinesisHTTPClient: httpClient, onServing: func(net.Addr) { close(serving) }})
	}()
	select {
	case <-serving:
	case err := <-svc.done:
		t.Fatalf("run returned before serving: %v\n%s", err, svc.out)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not start serving within 30 s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-svc.done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return within 30 s of the cleanup")
		}
	})
	return svc
}

// wait returns run's error, failing the test if run outlives limit.
func (s *service) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(limit):
		t.Fatalf("run did not return within %v of the stop", limit)
		return nil
	}
}

func baseEnv(e *emulator.Emulators, stream string) map[string]string {
	return map[string]string{
		settings.EnvStreamName:      stream,
		settings.EnvKinesisEndpoint: e.KinesisEndpoint,
		settings.EnvMetricsInterval: "100ms",
	}
}

func request(t *testing.T, client *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunDrainsThenFlushesOnStop(t *testing.T) {
	e, stream := newStream(t, 2)
	env := baseEnv(e, stream)
	env[settings.EnvMaxBufferedTime] = "1m" // records stay buffered until the shutdown flush
	env[settings.EnvDrainWindow] = "1s"
	env[settings.EnvShutdownTimeout] = "20s"
	svc := startService(t, env, nil)
	client := &http.Client{}

	if status, body := request(t, client, "GET", svc.url+ingest.PathHealthcheck, ""); status != 200 {
		t.Fatalf("health while serving: %d %s", status, body)
	}
	var want []string
	for i := range 50 {
		data := fmt.Sprintf("before-stop-%d", i)
		if status, body := request(t, client, "POST", svc.url+"/?ack=buffered", fmt.Sprintf(`{"data":%q}`, data)); status != 202 {
			t.Fatalf("buffered record: %d %s", status, body)
		}
		want = append(want, data)
	}

	svc.cancel() // SIGTERM
	// The health check turns 503 while records are still taken.
	eventually.Succeeds(t, 900*time.Millisecond, func() error {
		if status, _ := request(t, client, "GET", svc.url+ingest.PathHealthcheck, ""); status != 503 {
			return fmt.Errorf("health still %d after the stop", status)
		}
		return nil
	})
	if status, body := request(t, client, "POST", svc.url+"/?ack=buffered", `{"data":"during-drain"}`); status != 202 {
		t.Fatalf("record during the drain window: %d %s", status, body)
	}
	want = append(want, "during-drain")

	if err := svc.wait(t, 25*time.Second); err != nil {
		t.Fatalf("run: %v\n%s", err, svc.out)
	}
	// After the stop nothing listens any more.
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(svc.url + ingest.PathHealthcheck); err == nil {
		t.Error("server still answers after run returned")
	}

	// Every buffered record was flushed by the shutdown, a minute before its linger.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := ingesttest.ReadStream(ctx, e.KinesisClient(), stream)
	if err != nil {
		t.Fatal(err)
	}
	in := s.Data()
	for _, d := range want {
		if !in[d] {
			t.Errorf("record %q answered 202 is not in the stream after the shutdown", d)
		}
	}
	out := svc.out.String()
	for _, line := range []string{`"msg":"draining"`, `"msg":"stopped"`, `"` + ingest.RequestLatency + `"`, `"stream":"` + stream + `"`} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %s:\n%s", line, out)
		}
	}
}

func TestRunStopsWithinTimeoutWhenKinesisStalls(t *testing.T) {
	e, stream := newStream(t, 1)
	faults := ingesttest.NewFaultTransport(http.DefaultTransport, 1)
	faults.Stall = make(chan struct{}) // never released: Kinesis hangs
	env := baseEnv(e, stream)
	env[settings.EnvMaxBufferedTime] = "10ms"
	env[settings.EnvDrainWindow] = "100ms"
	env[settings.EnvShutdownTimeout] = "3s"
	svc := startService(t, env, &http.Client{Transport: faults})
	client := &http.Client{}

	for i := range 20 {
		if status, body := request(t, client, "POST", svc.url+"/?ack=buffered", fmt.Sprintf(`{"data":"stuck-%d"}`, i)); status != 202 {
			t.Fatalf("buffered record: %d %s", status, body)
		}
	}
	// A client waiting for Kinesis when the stop comes is answered, not cut.
	waiting := make(chan string, 1)
	go func() {
		resp, err := client.Post(svc.url, "application/json", strings.NewReader(`{"data":"waiting"}`))
		if err != nil {
			waiting <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		waiting <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	eventually.Succeeds(t, 10*time.Second, func() error {
		if c, _ := faults.Snapshot(); c.Calls == 0 {
			return errors.New("no call reached the stalled Kinesis")
		}
		return nil
	})

	start := time.Now()
	svc.cancel()
	err := svc.wait(t, 10*time.Second)
	t.Logf("run returned %v after the stop: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("run error = %v, want one saying records were not sent", err)
	}
	if got := <-waiting; !strings.HasPrefix(got, "503 ") {
		t.Errorf("waiting client got %s, want 503", got)
	}
}

// buildProducer builds the command into a temporary folder and returns its path.
func buildProducer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "producer")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinaryNamesABadConfigurationAndExits2 checks what only the process shows: the exit code and the variable
// at fault on stderr.
func TestBinaryNamesABadConfigurationAndExits2(t *testing.T) {
	bin := buildProducer(t)
	tests := map[string]struct {
		env      []string
		wantName string
	}{
		"no stream":    {nil, settings.EnvStreamName},
		"bad port":     {[]string{settings.EnvStreamName + "=s", settings.EnvPort + "=eighty"}, settings.EnvPort},
		"bad duration": {[]string{settings.EnvStreamName + "=s", settings.EnvRecordTTL + "=30"}, settings.EnvRecordTTL},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit = %v, want code 2", err)
			}
			if !strings.Contains(stderr.String(), tc.wantName) {
				t.Errorf("stderr %q does not name %s", stderr.String(), tc.wantName)
			}
		})
	}
}

// TestBinaryStopsCleanlyOnSIGTERM runs the command against kinesis-local, sends a record, then SIGTERM: the
// process exits 0 within its shutdown timeout and says it stopped.
func TestBinaryStopsCleanlyOnSIGTERM(t *testing.T) {
	bin := buildProducer(t)
	e, stream := newStream(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		settings.EnvStreamName + "=" + stream,
		settings.EnvKinesisEndpoint + "=" + e.KinesisEndpoint,
		settings.EnvListenHost + "=127.0.0.1",
		fmt.Sprintf("%s=%d", settings.EnvPort, port),
		settings.EnvDrainWindow + "=200ms",
		settings.EnvShutdownTimeout + "=5s",
	}
	var stdout, stderr telemetry.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second}
	eventually.Succeeds(t, 30*time.Second, func() error {
		resp, err := client.Get(url + ingest.PathHealthcheck)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check answered %d", resp.StatusCode)
		}
		return fmt.Errorf("service not healthy: %w\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	})
	if status, body := request(t, client, "POST", url, `{"data":"from the binary"}`); status != 200 {
		t.Fatalf("record: %d %s", status, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("process still running 15 s after SIGTERM with a 5 s shutdown timeout")
	}
	if out := stdout.String(); !strings.Contains(out, `"msg":"stopped"`) {
		t.Errorf("stdout lacks the stopped log line:\n%s", out)
	}
}
