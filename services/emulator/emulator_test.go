package emulator

import (
	"context"
	"errors"
	"net"
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
)

func TestStartServesEveryAPIAndStopLeavesNoProcess(t *testing.T) {
	// GIVEN all three emulators
	e, err := Start(context.Background(), Options{Kinesis: true, DynamoDB: true, CloudWatch: true})
	if err != nil {
		t.Fatalf("start emulators: %v", err)
	}
	defer e.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// WHEN each is used through its SDK client
	// THEN each answers a real call
	kc := e.KinesisClient()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("probe"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("kinesis CreateStream: %v", err)
	}
	if err := kinesis.NewStreamExistsWaiter(kc, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond }).
		Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("probe")}, 20*time.Second); err != nil {
		t.Fatalf("kinesis stream never became active: %v", err)
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

func TestStartFailsClearly(t *testing.T) {
	tests := map[string]struct {
		opts Options
		want string
	}{
		"nothing requested":    {opts: Options{}, want: "no emulator requested"},
		"node_modules missing": {opts: Options{Kinesis: true, Root: t.TempDir()}, want: "npm ci"},
		"dynalite missing":     {opts: Options{DynamoDB: true, Root: t.TempDir()}, want: "npm ci"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := Start(context.Background(), tc.opts)
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
	e := StartForTest(t, Options{DynamoDB: true})
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
	time.Sleep(200 * time.Millisecond)

	// THEN it still serves
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.DynamoDBClient().ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("dynalite stopped serving after abandoned requests: %v", err)
	}
}
