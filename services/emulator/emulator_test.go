package emulator_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamproc/streamproc/services/emulator"
	"github.com/streamproc/streamproc/services/emulator/emulatortest"
)

func TestStartServesEveryAPIAndStopLeavesNoProcess(t *testing.T) {
	// GIVEN all three emulators, moto_server serving both CloudWatch and S3
	e, err := emulator.Start(context.Background(), emulator.Options{Kinesis: true, DynamoDB: true, CloudWatch: true, S3: true})
	if err != nil {
		t.Fatalf("start emulators: %v", err)
	}
	defer e.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// WHEN each is used through its SDK client
	// THEN each answers a real call
	kc := e.KinesisClient()
	if err := emulator.CreateStream(ctx, kc, "probe", 2); err != nil {
		t.Fatalf("kinesis: %v", err)
	}
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("probe")})
	if err != nil || len(shards.Shards) != 2 {
		t.Fatalf("kinesis ListShards = %v shards, %v; want 2 shards", len(shards.Shards), err)
	}

	dc := e.DynamoDBClient()
	if _, err := dc.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("probe"),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: ddbtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatalf("dynamodb CreateTable: %v", err)
	}

	cc := e.CloudWatchClient()
	if _, err := cc.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace:  aws.String("EmulatorTest"),
		MetricData: []cwtypes.MetricDatum{{MetricName: aws.String("Probe"), Value: aws.Float64(1)}},
	}); err != nil {
		t.Fatalf("cloudwatch PutMetricData: %v", err)
	}
	metrics, err := cc.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("EmulatorTest")})
	if err != nil || len(metrics.Metrics) != 1 {
		t.Fatalf("cloudwatch ListMetrics = %v, %v; want the one metric put", metrics, err)
	}
	checkS3ConditionalWrites(ctx, t, e.S3Client())

	// WHEN stopped
	pids := e.PIDs()
	if err := e.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// THEN none of the processes it started is alive
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if err := e.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// checkS3ConditionalWrites puts an object twice with If-None-Match: * and wants the second refused with 412, as
// the S3 sink relies on.
func checkS3ConditionalWrites(ctx context.Context, t *testing.T, sc *s3.Client) {
	t.Helper()
	if _, err := sc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("probe-bucket")}); err != nil {
		t.Fatalf("s3 CreateBucket: %v", err)
	}
	put := func(body string) error {
		_, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("probe-bucket"), Key: aws.String("a/b"),
			Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatalf("s3 PutObject: %v", err)
	}
	var re *smithyhttp.ResponseError
	if err := put("second"); !errors.As(err, &re) || re.HTTPStatusCode() != 412 {
		t.Fatalf("second conditional PutObject = %v; want 412 Precondition Failed", err)
	}
}

func TestStartFailsClearly(t *testing.T) {
	tests := map[string]struct {
		opts emulator.Options
		want string
	}{
		"nothing requested":    {opts: emulator.Options{}, want: "no emulator requested"},
		"node_modules missing": {opts: emulator.Options{Kinesis: true, Root: t.TempDir()}, want: "npm ci"},
		"dynalite missing":     {opts: emulator.Options{DynamoDB: true, Root: t.TempDir()}, want: "npm ci"},
		"moto_server missing":  {opts: emulator.Options{CloudWatch: true}, want: "moto_server not found on PATH"},
		"moto_server for S3":   {opts: emulator.Options{S3: true}, want: "moto_server not found on PATH"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // no emulator binary can be found
			e, err := emulator.Start(context.Background(), tc.opts)
			if err == nil {
				_ = e.Stop()
				t.Fatal("Start succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestDynamoDBSurvivesAbandonedRequests guards the abort preload: dynalite on its own dies when a client resets
// its connection in the middle of a request, which a cancelled context or a killed worker does.
func TestDynamoDBSurvivesAbandonedRequests(t *testing.T) {
	// GIVEN dynalite
	e := emulatortest.StartForTest(t, emulator.Options{DynamoDB: true})
	addr := strings.TrimPrefix(e.DynamoDBEndpoint, "http://")

	// WHEN clients reset their connections half-way through sending requests
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: dynamodb\r\nContent-Type: application/x-amz-json-1.0\r\n" +
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"Limit\":"))
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(50 * time.Millisecond)    // let the server start reading the body
		_ = conn.(*net.TCPConn).SetLinger(0) // close with a reset, as an aborted request does
		_ = conn.Close()
	}
	time.Sleep(200 * time.Millisecond) // let dynalite handle the resets: without the preload it dies here

	// THEN it still serves
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.DynamoDBClient().ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("dynalite stopped serving after abandoned requests: %v", err)
	}
}

// TestEmulatorsListenOnLoopbackOnly checks every listening socket of every emulator process: none may be reachable
// from outside this machine (kinesis-local listens on all interfaces in its own code).
func TestEmulatorsListenOnLoopbackOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the listening sockets from /proc, which only Linux has")
	}
	// GIVEN all three emulators
	e := emulatortest.StartForTest(t, emulator.Options{Kinesis: true, DynamoDB: true, CloudWatch: true})

	// WHEN their processes' listening sockets are read from /proc
	listening := listeningSockets(t)
	for _, pid := range e.PIDs() {
		found := 0
		for _, inode := range socketInodes(t, pid) {
			addr, ok := listening[inode]
			if !ok {
				continue
			}
			found++
			// THEN each is bound to a loopback address
			if !addr.IsLoopback() {
				t.Errorf("emulator pid %d listens on %v, want a loopback address", pid, addr)
			}
		}
		if found == 0 {
			t.Errorf("emulator pid %d has no listening socket", pid)
		}
	}
}

// listeningSockets maps the inode of every listening TCP socket on this machine to its local address.
func listeningSockets(t *testing.T) map[string]net.IP {
	t.Helper()
	sockets := map[string]net.IP{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		content, err := os.ReadFile(table)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		for _, line := range strings.Split(string(content), "\n")[1:] {
			fields := strings.Fields(line)
			const listen = "0A"
			if len(fields) < 10 || fields[3] != listen {
				continue
			}
			hexAddr, _, _ := strings.Cut(fields[1], ":")
			sockets[fields[9]] = procAddress(t, hexAddr)
		}
	}
	return sockets
}

// procAddress decodes an address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) byte order.
func procAddress(t *testing.T, hexAddr string) net.IP {
	t.Helper()
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("bad address %q in /proc/net/tcp: %v", hexAddr, err)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return ip
}

// socketInodes lists the inodes of the sockets process pid holds open.
func socketInodes(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var inodes []string
	for _, entry := range entries {
		target, err := os.Readlink(dir + "/" + entry.Name())
		if err != nil {
			continue // the descriptor closed while being read
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes = append(inodes, strings.TrimSuffix(inode, "]"))
		}
	}
	return inodes
}
