// Package emulator starts and stops the local AWS emulators the project runs on without an AWS account:
// kinesis-local (Kinesis), dynalite (DynamoDB) and moto_server (CloudWatch and S3).
//
// Each emulator is a child process listening on a free port of 127.0.0.1. Start waits until every
// requested emulator answers HTTP, and Stop ends exactly the processes Start began, by PID. Integration tests
// and the local pipeline runner share this package, so both see the same emulators with the same settings.
//
// The Node emulators come from the repository's node_modules (installed with `npm ci` from the pinned
// package-lock.json); moto_server must be on PATH.
package emulator

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Scripts preloaded into the Node emulators with `node -r`.
var (
	// loopbackPreload forces kinesis-local, which listens on every interface in its code, onto 127.0.0.1.
	//
	//go:embed loopback.cjs
	loopbackPreload []byte
	// abortPreload keeps dynalite alive when a client abandons a request (dynalite rethrows the request's error,
	// which would end the process).
	//
	//go:embed abort.cjs
	abortPreload []byte
)

// Options selects the emulators to start. The zero value starts none.
type Options struct {
	// Kinesis starts kinesis-local.
	Kinesis bool
	// DynamoDB starts dynalite.
	DynamoDB bool
	// CloudWatch starts moto_server, used for its CloudWatch API.
	CloudWatch bool
	// S3 starts moto_server, used for its S3 API (path-style addressing; conditional writes honoured). With
	// CloudWatch too, one moto_server serves both.
	S3 bool

	// Root is the directory holding node_modules (the repository root).
	// Default: the nearest directory at or above the working directory that holds go.mod.
	Root string
	// KinesisEnv holds extra KEY=VALUE settings for kinesis-local, for example "UPDATE_SHARD_COUNT_DURATION=200ms"
	// or "SHOULD_PERSIST_DATA=true". Default: none beyond the project's defaults (see Start).
	KinesisEnv []string
	// Output receives the emulators' own output. Default: discarded (the last lines are still kept for errors).
	Output io.Writer
	// StartTimeout bounds how long Start waits for every emulator to answer. Default: 60 s.
	StartTimeout time.Duration
}

// Emulators is a running set of emulators. Endpoints of emulators that were not requested are empty.
type Emulators struct {
	// KinesisEndpoint is kinesis-local's plain-HTTP URL, such as http://127.0.0.1:41234.
	KinesisEndpoint string
	// DynamoDBEndpoint is dynalite's URL.
	DynamoDBEndpoint string
	// CloudWatchEndpoint is moto_server's URL.
	CloudWatchEndpoint string
	// S3Endpoint is moto_server's URL too, for its S3 API.
	S3Endpoint string

	procs    []*process
	tempDir  string
	stopOnce sync.Once
	stopErr  error
}

// Start starts the requested emulators and waits until each answers HTTP on 127.0.0.1.
// On any failure it stops what it started and returns an error that names the emulator and ends with its
// last lines of output.
//
// kinesis-local runs with SHARD_LIMIT=1000 (closed shards count towards the emulator's limit) and
// LOG_LEVEL=WARN; dynalite with --createTableMs 100 (tables become ACTIVE quickly) and a preload that keeps it
// alive when a client abandons a request.
func Start(ctx context.Context, opts Options) (*Emulators, error) {
	if !opts.Kinesis && !opts.DynamoDB && !opts.CloudWatch && !opts.S3 {
		return nil, errors.New("emulator: no emulator requested (set Kinesis, DynamoDB, CloudWatch or S3)")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	root := opts.Root
	if root == "" {
		var err error
		if root, err = moduleRoot(); err != nil {
			return nil, err
		}
	}

	e := &Emulators{}
	ok := false
	defer func() {
		if !ok {
			_ = e.Stop()
		}
	}()
	dir, err := os.MkdirTemp("", "emulator-")
	if err != nil {
		return nil, fmt.Errorf("emulator: temp dir: %w", err)
	}
	e.tempDir = dir

	if opts.Kinesis {
		if err := e.startKinesis(root, opts); err != nil {
			return nil, err
		}
	}
	if opts.DynamoDB {
		if err := e.startDynamoDB(root, opts); err != nil {
			return nil, err
		}
	}
	if opts.CloudWatch || opts.S3 {
		if err := e.startMoto(opts); err != nil {
			return nil, err
		}
	}

	readyCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	for _, p := range e.procs {
		if err := p.waitReady(readyCtx); err != nil {
			return nil, err
		}
	}
	ok = true
	return e, nil
}

func (e *Emulators) startKinesis(root string, opts Options) error {
	pkg := filepath.Join(root, "node_modules", "kinesis-local")
	if err := requireFile(filepath.Join(pkg, "main.js")); err != nil {
		return err
	}
	preload, err := e.writePreload("loopback.cjs", loopbackPreload)
	if err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	env := append(os.Environ(),
		"KINESIS_MOCK_CERT_PATH="+filepath.Join(pkg, "server.json"),
		"KINESIS_MOCK_PLAIN_PORT="+strconv.Itoa(ports[0]),
		"KINESIS_MOCK_TLS_PORT="+strconv.Itoa(ports[1]),
		"SHARD_LIMIT=1000",
		"LOG_LEVEL=WARN",
	)
	env = append(env, opts.KinesisEnv...)
	cmd := exec.Command("node", "-r", preload, filepath.Join(pkg, "main.js"))
	cmd.Env = env
	cmd.Dir = e.tempDir
	e.KinesisEndpoint = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	return e.start("kinesis-local", cmd, e.KinesisEndpoint, opts.Output)
}

func (e *Emulators) startDynamoDB(root string, opts Options) error {
	cli := filepath.Join(root, "node_modules", "dynalite", "cli.js")
	if err := requireFile(cli); err != nil {
		return err
	}
	preload, err := e.writePreload("abort.cjs", abortPreload)
	if err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	cmd := exec.Command("node", "-r", preload, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--createTableMs", "100")
	e.DynamoDBEndpoint = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	return e.start("dynalite", cmd, e.DynamoDBEndpoint, opts.Output)
}

// startMoto starts moto_server, which serves the CloudWatch and S3 APIs that opts asks for.
func (e *Emulators) startMoto(opts Options) error {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return fmt.Errorf("emulator: moto_server not found on PATH (it provides the CloudWatch and S3 emulators): %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(ports[0]))
	endpoint := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if opts.CloudWatch {
		e.CloudWatchEndpoint = endpoint
	}
	if opts.S3 {
		e.S3Endpoint = endpoint
	}
	return e.start("moto_server", cmd, endpoint, opts.Output)
}

// writePreload writes a Node preload script into the emulators' temp dir and returns its path.
func (e *Emulators) writePreload(name string, script []byte) (string, error) {
	path := filepath.Join(e.tempDir, name)
	if err := os.WriteFile(path, script, 0o600); err != nil {
		return "", fmt.Errorf("emulator: write preload %s: %w", name, err)
	}
	return path, nil
}

func (e *Emulators) start(name string, cmd *exec.Cmd, endpoint string, output io.Writer) error {
	p := &process{name: name, endpoint: endpoint, cmd: cmd, done: make(chan struct{})}
	var w io.Writer = &p.tail
	if output != nil {
		w = io.MultiWriter(&p.tail, output)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	setChildAttributes(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("emulator: start %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	e.procs = append(e.procs, p)
	return nil
}

// PIDs returns the process ids of the running emulators, for status output and for tests that check
// nothing is left behind.
func (e *Emulators) PIDs() []int {
	pids := make([]int, 0, len(e.procs))
	for _, p := range e.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Stop ends the emulators this value started: SIGTERM, then SIGKILL after 5 s for any that is still running.
// It is safe to call more than once.
func (e *Emulators) Stop() error {
	e.stopOnce.Do(func() {
		var errs []error
		for _, p := range e.procs {
			if err := p.stop(5 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if e.tempDir != "" {
			if err := os.RemoveAll(e.tempDir); err != nil {
				errs = append(errs, fmt.Errorf("emulator: remove temp dir: %w", err))
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

type process struct {
	name     string
	endpoint string
	cmd      *exec.Cmd
	tail     tailBuffer
	done     chan struct{}
	waitErr  error
}

// waitReady polls the endpoint until any HTTP response arrives: the emulators answer unsigned requests with
// an error body, which is enough to know they are serving.
func (p *process) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("emulator: %s exited before it was ready (%v); its output:\n%s", p.name, p.waitErr, p.tail.String())
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.endpoint, nil)
		if err != nil {
			return fmt.Errorf("emulator: %s: %w", p.name, err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("emulator: %s did not answer on %s: %w; its output:\n%s", p.name, p.endpoint, ctx.Err(), p.tail.String())
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("emulator: signal %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("emulator: kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// tailBuffer keeps the last few KiB an emulator printed, so a start failure can show why.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailLimit = 8 << 10

// Write implements io.Writer: it appends b and drops all but the last tailLimit bytes. It never fails.
func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - tailLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

// String implements fmt.Stringer: the kept output without surrounding white space.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. Holding all listeners until every port is
// chosen keeps the ports distinct; another process could still take one before the emulator binds it, which
// Start then reports as the emulator exiting early.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("emulator: find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func requireFile(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("emulator: %s is missing: run `npm ci` in the repository root (make test and make local do it): %w", path, err)
	}
	return nil
}

// moduleRoot finds the nearest directory at or above the working directory that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("emulator: working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("emulator: no go.mod at or above the working directory; set Options.Root")
		}
		dir = parent
	}
}
