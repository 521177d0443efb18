package stacks_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/streamproc/streamproc/constructs/consumerservice"
	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/stacks"
)

func TestLeaseTable(t *testing.T) {
	has(t, synthesized.tDefaults, "AWS::DynamoDB::Table", map[string]any{
		"BillingMode": "PAY_PER_REQUEST",
		"KeySchema":   []any{map[string]any{"AttributeName": kcl.LeaseTableHashKey, "KeyType": "HASH"}},
		"AttributeDefinitions": []any{
			map[string]any{"AttributeName": kcl.LeaseTableHashKey, "AttributeType": "S"},
			map[string]any{"AttributeName": kcl.AttrLeaseOwner, "AttributeType": "S"},
		},
		// The Java KCL 3.x's index of leases by owner, exactly as it creates it.
		"GlobalSecondaryIndexes": []any{map[string]any{
			"IndexName": kcl.LeaseOwnerIndexName,
			"KeySchema": []any{
				map[string]any{"AttributeName": kcl.AttrLeaseOwner, "KeyType": "HASH"},
				map[string]any{"AttributeName": kcl.AttrLeaseKey, "KeyType": "RANGE"},
			},
			"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
		}},
		"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
	})
	for stack, want := range map[string]string{snapshotStack: "Delete", variantStack: "Retain"} {
		if got := only(t, stack, "AWS::DynamoDB::Table")["DeletionPolicy"]; got != want {
			t.Errorf("%s: lease table DeletionPolicy = %v, want %s", stack, got, want)
		}
	}
	outputs := synthesized.raw[snapshotStack]["Outputs"].(map[string]any)
	if got := jsonString(t, outputs[stacks.OutputLeaseTableName]); !strings.Contains(got, `"Ref":"ConsumerLeaseTable`) {
		t.Errorf("lease table output %s, want the table's name", got)
	}
}

func TestConsumerService(t *testing.T) {
	c := taskContainer(t, snapshotStack, "Consumer", consumerservice.ContainerName)
	if c["ReadonlyRootFilesystem"] != true || c["User"] != fargateservice.ContainerUser {
		t.Errorf("consumer ReadonlyRootFilesystem %v User %v, want true and %s", c["ReadonlyRootFilesystem"], c["User"], fargateservice.ContainerUser)
	}
	if got := c["StopTimeout"]; got != consumerservice.StopTimeout.Seconds() || consumerservice.StopTimeout <= consumerservice.ShutdownTimeout {
		t.Errorf("consumer StopTimeout %v, want %v, above the %v graceful shutdown", got, consumerservice.StopTimeout.Seconds(), consumerservice.ShutdownTimeout)
	}
	if _, ok := c["PortMappings"]; ok {
		t.Errorf("consumer has port mappings %v: it serves nothing", c["PortMappings"])
	}
	_, td := resourceWithPrefix(t, snapshotStack, "AWS::ECS::TaskDefinition", "Consumer")
	if got := jsonString(t, props(td)["RuntimePlatform"]); got != `{"CpuArchitecture":"ARM64","OperatingSystemFamily":"LINUX"}` {
		t.Errorf("consumer runtime platform %s", got)
	}
	_, vtd := resourceWithPrefix(t, variantStack, "AWS::ECS::TaskDefinition", "Consumer")
	if props(vtd)["Cpu"] != "256" || props(vtd)["Memory"] != "512" {
		t.Errorf("variant consumer size %v/%v, want 256/512", props(vtd)["Cpu"], props(vtd)["Memory"])
	}
	_, svc := resourceWithPrefix(t, snapshotStack, "AWS::ECS::Service", "Consumer")
	sp := props(svc)
	if got := jsonString(t, sp["DeploymentConfiguration"]); !strings.Contains(got, `"DeploymentCircuitBreaker":{"Enable":true,"Rollback":true}`) {
		t.Errorf("consumer DeploymentConfiguration %s, want the circuit breaker with rollback", got)
	}
	if net := jsonString(t, sp["NetworkConfiguration"]); !strings.Contains(net, `"AssignPublicIp":"DISABLED"`) || !strings.Contains(net, "PrivateSubnet1") {
		t.Errorf("consumer network %s, want private subnets without public IPs", net)
	}
	if _, ok := sp["LoadBalancers"]; ok {
		t.Errorf("consumer service has a load balancer")
	}
	// CPU target tracking, as the producer's.
	policies := 0
	for id, pol := range resources(t, snapshotStack, "AWS::ApplicationAutoScaling::ScalingPolicy") {
		if strings.HasPrefix(id, "ConsumerService") {
			policies++
			if got := jsonString(t, props(pol)["TargetTrackingScalingPolicyConfiguration"]); !strings.Contains(got, `"TargetValue":65`) || !strings.Contains(got, "ECSServiceAverageCPUUtilization") {
				t.Errorf("consumer scaling %s, want 65 %% CPU target tracking", got)
			}
		}
	}
	if policies != 1 {
		t.Errorf("%d consumer scaling policies, want 1", policies)
	}
	// The defaults, written out: 1 to 10 tasks (TestScalingCooldowns checks the policy's 10 s cooldowns).
	_, target := resourceWithPrefix(t, snapshotStack, "AWS::ApplicationAutoScaling::ScalableTarget", "ConsumerService")
	if tp := props(target); tp["MinCapacity"] != float64(1) || tp["MaxCapacity"] != float64(10) {
		t.Errorf("consumer scalable target min %v max %v, want 1 and 10", tp["MinCapacity"], tp["MaxCapacity"])
	}
	_, vtarget := resourceWithPrefix(t, variantStack, "AWS::ApplicationAutoScaling::ScalableTarget", "ConsumerService")
	if tp := props(vtarget); tp["MinCapacity"] != float64(2) || tp["MaxCapacity"] != float64(8) {
		t.Errorf("variant consumer scalable target min %v max %v, want 2 and 8", tp["MinCapacity"], tp["MaxCapacity"])
	}
}

func TestConsumerEnvironmentIsExactlyWhatTheConsumerReads(t *testing.T) {
	// Every variable services/consumer/settings declares, less those the platform or a local run sets.
	read := []string{
		settings.EnvStreamName, settings.EnvApplicationName, settings.EnvReadMode, settings.EnvConsumerARN,
		settings.EnvInitialPosition, settings.EnvInitialTimestamp, settings.EnvKinesisEndpoint, settings.EnvDynamoDBEndpoint,
		settings.EnvWorkerID, settings.EnvCreateLeaseTable, settings.EnvCheckpointRecords, settings.EnvCheckpointInterval,
		settings.EnvFailoverTime, settings.EnvShutdownTimeout, settings.EnvECSMetadataURI, settings.EnvRegion,
		settings.EnvLogLevel, settings.EnvMetricsNamespace, settings.EnvMetricsInterval,
		settings.EnvProcessor, settings.EnvMultiLangCommand, settings.EnvMultiLangTimeout, settings.EnvMultiLangProtocolVersion,
		settings.EnvMaxRecords, settings.EnvPollIdleInterval, settings.EnvProcessEmptyBatches, settings.EnvShardSyncInterval,
		settings.EnvLeaseBalancing, settings.EnvRebalanceThreshold, settings.EnvHandoffTimeout,
		settings.EnvS3Bucket, settings.EnvS3Prefix, settings.EnvS3Format, settings.EnvS3MaxObjectBytes, settings.EnvS3MaxObjectAge,
		settings.EnvS3SpillDir, settings.EnvS3Endpoint,
	}
	// Set only with consumerProcessorCommand (the variant): the MultiLang processor.
	multiLang := []string{settings.EnvProcessor, settings.EnvMultiLangCommand}
	// Set only with the S3 sink (consumerSink=s3 and the Go consumer: the defaults).
	sink := []string{settings.EnvProcessor, settings.EnvS3Bucket, settings.EnvS3Prefix, settings.EnvS3Format, settings.EnvS3SpillDir}
	notSet := map[string]string{
		settings.EnvProcessor:                "the image's choice unless consumerProcessorCommand is set or the lake is built",
		settings.EnvS3Bucket:                 "only with the S3 sink",
		settings.EnvS3Prefix:                 "only with the S3 sink",
		settings.EnvS3Format:                 "only with the S3 sink",
		settings.EnvS3SpillDir:               "only with the S3 sink",
		settings.EnvS3MaxObjectBytes:         "the sink's default (64 MiB)",
		settings.EnvS3MaxObjectAge:           "the sink's default (1 minute)",
		settings.EnvS3Endpoint:               "local emulator only",
		settings.EnvMultiLangCommand:         "the image's choice unless consumerProcessorCommand is set",
		settings.EnvMultiLangTimeout:         "the consumer's default (1 minute) or the image's properties file",
		settings.EnvMultiLangProtocolVersion: "the consumer's default (2) or the image's properties file",
		settings.EnvMaxRecords:               "polling only: the consumer's default (10000) or the image's properties file",
		settings.EnvPollIdleInterval:         "polling only: the consumer's default (1 s) or the image's properties file",
		settings.EnvProcessEmptyBatches:      "the processor's own default or the image's properties file",
		settings.EnvShardSyncInterval:        "the consumer's default (1 minute)",
		settings.EnvLeaseBalancing:           "the consumer's default (by load)",
		settings.EnvRebalanceThreshold:       "the consumer's default (10 %, as the Java KCL 3.x)",
		settings.EnvHandoffTimeout:           "the consumer's default (30 s, as the Java KCL 3.x)",
		settings.EnvRegion:                   "set by ECS itself",
		settings.EnvInitialTimestamp:         "only with INITIAL_POSITION=AT_TIMESTAMP",
		settings.EnvKinesisEndpoint:          "local emulator only",
		settings.EnvDynamoDBEndpoint:         "local emulator only",
		settings.EnvWorkerID:                 "defaults to the ECS task id",
		settings.EnvECSMetadataURI:           "set by ECS itself",
	}
	var want []string
	for _, n := range read {
		if _, skip := notSet[n]; !skip {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	sources, _ := filepath.Glob(filepath.Join("..", "services", "consumer", "settings", "*.go"))
	for _, path := range sources {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s+Env\w+\s*=\s*"([A-Z0-9_]+)"`).FindAllSubmatch(src, -1) {
			if !slices.Contains(read, string(m[1])) {
				t.Errorf("consumer settings declare %s, which this test does not know: set it in the task definition or list why not", m[1])
			}
		}
	}
	for stack, want := range map[string][]string{
		snapshotStack: slices.Sorted(slices.Values(append(slices.Clone(want), sink...))),
		variantStack:  slices.Sorted(slices.Values(append(slices.Clone(want), multiLang...))),
	} {
		c := taskContainer(t, stack, "Consumer", consumerservice.ContainerName)
		if got := containerEnvNames(t, c); !slices.Equal(got, want) {
			t.Errorf("%s: consumer container env %v, want exactly %v", stack, got, want)
		}
		env := containerEnv(t, c)
		if !strings.Contains(env[settings.EnvConsumerARN], "StreamFanOutConsumer") || !strings.Contains(env[settings.EnvApplicationName], "ConsumerLeaseTable") {
			t.Errorf("%s: consumer env %v, want the fan-out consumer's ARN and the lease table's name", stack, env)
		}
		lookup := func(k string) (string, bool) {
			switch k {
			case settings.EnvConsumerARN:
				return "arn:aws:kinesis:us-east-1:111122223333:stream/s/consumer/c:1", true
			case settings.EnvStreamName, settings.EnvApplicationName:
				return "resolved-at-deploy", true
			}
			v, ok := env[k]
			return v, ok
		}
		s, err := settings.Load(lookup)
		if err != nil {
			t.Errorf("%s: the consumer rejects its task definition's environment: %v", stack, err)
		}
		if s.ReadMode != kcl.ReadModeFanOut || s.CreateLeaseTable {
			t.Errorf("%s: consumer settings %+v, want fan-out reads and a lease table owned by the stack", stack, s)
		}
		if stack == snapshotStack && (s.Processor != settings.ProcessorS3 || s.S3.SpillDir != consumerservice.SpillPath ||
			!strings.Contains(env[settings.EnvS3Bucket], "LakeBucket") || s.S3.Prefix != settings.DefaultS3Prefix) {
			t.Errorf("%s: consumer processor %q, sink %+v, want the S3 sink on the lake's bucket, spilling to %s", stack, s.Processor, s.S3, consumerservice.SpillPath)
		}
		if stack == variantStack && (s.Processor != settings.ProcessorMultiLang || strings.Join(s.MultiLang.Command, " ") != variantConfig.ConsumerProcessorCommand) {
			t.Errorf("%s: consumer processor %q %q, want the MultiLang command %q", stack, s.Processor, s.MultiLang.Command, variantConfig.ConsumerProcessorCommand)
		}
	}
}

func TestDashboardShowsEveryMetric(t *testing.T) {
	d := only(t, snapshotStack, "AWS::CloudWatch::Dashboard")
	if props(d)["DashboardName"] != snapshotStack {
		t.Errorf("dashboard name %v, want %s", props(d)["DashboardName"], snapshotStack)
	}
	body := jsonString(t, props(d)["DashboardBody"])
	titles := []string{
		"Producer CPU utilisation", "Consumer CPU utilisation", "Running tasks", "Consumer behind latest",
		"PutRecords success", "Write throughput exceeded", "User records vs Kinesis records",
		"Open shards and scaling actions", "Iterator age", "Producer request latency", "Producer 503s",
		"Load balancer 4xx / 5xx", "Leases", "Alarms", "Load per worker", "Lease moves",
	}
	for _, title := range titles {
		if !strings.Contains(body, title) {
			t.Errorf("dashboard lacks the widget %q", title)
		}
	}
	metrics := []string{
		// AWS metrics
		"CPUUtilization", "RunningTaskCount", "PutRecords.Success", "PutRecords.SuccessfulRecords",
		"PutRecords.TotalRecords", "WriteProvisionedThroughputExceeded", "GetRecords.IteratorAgeMilliseconds",
		"SubscribeToShardEvent.MillisBehindLatest", "HTTPCode_ELB_4XX_Count", "HTTPCode_ELB_5XX_Count",
		"HTTPCode_Target_4XX_Count", "HTTPCode_Target_5XX_Count", "IncomingRecords",
		// the services' own EMF metrics, by their constants
		kpl.MetricUserRecordsPut, kpl.MetricKinesisRecordsPut, ingest.RequestLatency, ingest.RejectedBufferFull,
		ingest.Requests5xx, scaler.MetricOpenShardCount, scaler.MetricScalingActions, kcl.MetricMillisBehindLatest,
		kcl.MetricCurrentLeases, kcl.MetricLeasesTaken, kcl.MetricLeasesLost, kcl.MetricRecordsProcessed,
		kcl.MetricLeaseMoves, kcl.MetricHandoffTimeouts,
	}
	for _, m := range metrics {
		if !strings.Contains(body, `\"`+m+`\"`) {
			t.Errorf("dashboard lacks the metric %s", m)
		}
	}
	// Each worker's load is searched by the dimensions the worker writes it with, for this application.
	if search := `SEARCH('{StreamProc,` + consumerservice.DimensionApplication + `,` + consumerservice.DimensionService + `,` +
		kcl.DimensionWorkerID + `} MetricName=\\\"` + kcl.MetricWorkerLoad + `\\\" ` + consumerservice.DimensionApplication + `=\\\"`; !strings.Contains(body, search) {
		t.Errorf("dashboard body lacks the per-worker load search %s", search)
	}
	// The services' metrics are read in their namespace and with the dimensions they write.
	for _, want := range []string{`\"StreamProc\"`, `\"` + ingest.DimensionStream + `\"`, `\"` + consumerservice.DimensionApplication + `\"`, `\"` + consumerservice.DimensionService + `\",\"` + consumerservice.ServiceName + `\"`, "ECS/ContainerInsights"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard body lacks %s", want)
		}
	}
	outputs := synthesized.raw[snapshotStack]["Outputs"].(map[string]any)
	if got := jsonString(t, outputs[stacks.OutputDashboardURL]); !strings.Contains(got, "console.aws.amazon.com/cloudwatch") || !strings.Contains(got, "#dashboards:name=") {
		t.Errorf("dashboard URL output %s", got)
	}
}

func TestAlarms(t *testing.T) {
	// The throttling alarm (autoscaler trigger) and the dashboard's three.
	count(t, synthesized.tDefaults, "AWS::CloudWatch::Alarm", 4)
	alarms := resources(t, snapshotStack, "AWS::CloudWatch::Alarm")
	found := map[string]map[string]any{}
	for id, a := range alarms {
		found[id] = props(a)
	}
	find := func(prefix string) map[string]any {
		for id, p := range found {
			if strings.HasPrefix(id, prefix) {
				return p
			}
		}
		t.Fatalf("no alarm %s* among %v", prefix, found)
		return nil
	}
	iter := jsonString(t, find("DashboardIteratorAgeAlarm"))
	for _, want := range []string{"GetRecords.IteratorAgeMilliseconds", "SubscribeToShardEvent.MillisBehindLatest", "MAX([polling, fanout])", `"Threshold":300000`} {
		if !strings.Contains(iter, want) {
			t.Errorf("iterator age alarm lacks %s: %s", want, iter)
		}
	}
	lb := jsonString(t, find("DashboardLoadBalancer5xxAlarm"))
	for _, want := range []string{"HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", `"Threshold":10`} {
		if !strings.Contains(lb, want) {
			t.Errorf("5xx alarm lacks %s: %s", want, lb)
		}
	}
	bf := find("DashboardBufferFullAlarm")
	bfs := jsonString(t, bf)
	if !strings.Contains(bfs, `"MetricName":"`+ingest.RejectedBufferFull+`","Namespace":"StreamProc"`) || bf["DatapointsToAlarm"] != float64(3) || bf["EvaluationPeriods"] != float64(5) {
		t.Errorf("buffer-full alarm %s, want %s in 3 of 5 minutes", bfs, ingest.RejectedBufferFull)
	}
	th := find("ShardAutoscalerThrottlingAlarm")
	if th["MetricName"] != "WriteProvisionedThroughputExceeded" || th["Period"] != float64(60) {
		t.Errorf("throttling alarm %s", jsonString(t, th))
	}
}
