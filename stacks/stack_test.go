package stacks_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"

	"github.com/streamproc/streamproc/constructs/autoscaler"
	"github.com/streamproc/streamproc/constructs/dashboard"
	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/constructs/producerservice"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/stacks"
)

func TestInboundCIDRParameter(t *testing.T) {
	// GIVEN the synthesized default stack
	params := synthesized.raw[snapshotStack]["Parameters"].(map[string]any)
	p, ok := params[stacks.ParameterInboundCIDRRange].(map[string]any)
	// THEN the parameter exists, without a default, and validates its value with the pattern
	if !ok {
		t.Fatalf("no %s parameter in %v", stacks.ParameterInboundCIDRRange, params)
	}
	if p["Type"] != "String" || p["AllowedPattern"] != stacks.InboundCIDRPattern {
		t.Errorf("parameter = %v, want a String with AllowedPattern %q", p, stacks.InboundCIDRPattern)
	}
	if _, hasDefault := p["Default"]; hasDefault {
		t.Errorf("parameter has a default %v: the deployer must choose the address range", p["Default"])
	}
	re := regexp.MustCompile(stacks.InboundCIDRPattern)
	tests := map[string]struct {
		value string
		ok    bool
	}{
		"one host":          {"203.0.113.7/32", true},
		"a /24":             {"203.0.113.0/24", true},
		"everything":        {"0.0.0.0/0", true},
		"no prefix length":  {"203.0.113.0", false},
		"octet above 255":   {"256.0.113.0/24", false},
		"prefix above 32":   {"203.0.113.0/33", false},
		"IPv6":              {"2001:db8::/32", false},
		"two ranges":        {"203.0.113.0/24,198.51.100.0/24", false},
		"leading zero":      {"203.0.113.01/32", false},
		"trailing newline":  {"203.0.113.0/24\n", false},
		"hostname":          {"example.com/32", false},
		"empty":             {"", false},
		"three octets only": {"203.0.113/24", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := re.MatchString(tc.value); got != tc.ok {
				t.Errorf("pattern matches %q = %v, want %v", tc.value, got, tc.ok)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	tpl, variant := synthesized.tDefaults, synthesized.tVariant
	count(t, tpl, "AWS::EC2::VPC", 1)
	// Two AZs, a public and a private subnet in each.
	count(t, tpl, "AWS::EC2::Subnet", 4)
	has(t, tpl, "AWS::EC2::Subnet", map[string]any{"MapPublicIpOnLaunch": true})
	has(t, tpl, "AWS::EC2::Subnet", map[string]any{"MapPublicIpOnLaunch": false})
	// One NAT gateway by default, two when configured.
	count(t, tpl, "AWS::EC2::NatGateway", 1)
	count(t, variant, "AWS::EC2::NatGateway", 2)
	has(t, tpl, "AWS::EC2::FlowLog", map[string]any{"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
	// Gateway endpoints (DynamoDB for the lease table, S3 for image layers); interface endpoints only when asked.
	endpoints := func(stack string) (gateway, iface []string) {
		for _, r := range resources(t, stack, "AWS::EC2::VPCEndpoint") {
			name := jsonString(t, props(r)["ServiceName"])
			if props(r)["VpcEndpointType"] == "Interface" {
				iface = append(iface, name)
			} else {
				gateway = append(gateway, name)
			}
		}
		return gateway, iface
	}
	for _, stack := range []string{snapshotStack, variantStack} {
		gateway, iface := endpoints(stack)
		joined := strings.Join(gateway, " ")
		if len(gateway) != 2 || !strings.Contains(joined, ".dynamodb") || !strings.Contains(joined, ".s3") {
			t.Errorf("%s: gateway endpoints %v, want DynamoDB and S3", stack, gateway)
		}
		want := 0
		if stack == variantStack {
			want = 4
		}
		if len(iface) != want {
			t.Errorf("%s: %d interface endpoints (%v), want %d", stack, len(iface), iface, want)
		}
		if want > 0 {
			for _, svc := range []string{".kinesis-streams", ".ecr.api", ".ecr.dkr", ".logs"} {
				if !strings.Contains(strings.Join(iface, " "), svc) {
					t.Errorf("%s: no interface endpoint for %s in %v", stack, svc, iface)
				}
			}
		}
	}
	// Environment-agnostic: the AZs come from Fn::GetAZs, no lookup, no context.
	for _, s := range resources(t, snapshotStack, "AWS::EC2::Subnet") {
		if az := jsonString(t, props(s)["AvailabilityZone"]); !strings.Contains(az, "Fn::GetAZs") {
			t.Errorf("subnet AZ %s, want a Fn::GetAZs selection (environment-agnostic)", az)
		}
	}
}

func TestStream(t *testing.T) {
	has(t, synthesized.tDefaults, "AWS::Kinesis::Stream", map[string]any{
		"ShardCount":           5,
		"RetentionPeriodHours": 24,
		"StreamModeDetails":    map[string]any{"StreamMode": "PROVISIONED"},
		"StreamEncryption":     map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
	})
	has(t, synthesized.tVariant, "AWS::Kinesis::Stream", map[string]any{"ShardCount": 8, "RetentionPeriodHours": 48})
	s := only(t, snapshotStack, "AWS::Kinesis::Stream")
	var metrics []string
	for _, m := range props(s)["DesiredShardLevelMetrics"].([]any) {
		metrics = append(metrics, m.(string))
	}
	// The autoscaler's hot-shard rules read these per shard.
	for _, want := range []string{"IncomingBytes", "IncomingRecords", "WriteProvisionedThroughputExceeded"} {
		if !slices.Contains(metrics, want) {
			t.Errorf("shard-level metrics %v lack %s", metrics, want)
		}
	}
	if s["DeletionPolicy"] != "Delete" {
		t.Errorf("default stream DeletionPolicy = %v, want Delete", s["DeletionPolicy"])
	}
	if v := only(t, variantStack, "AWS::Kinesis::Stream"); v["DeletionPolicy"] != "Retain" {
		t.Errorf("retainData stream DeletionPolicy = %v, want Retain", v["DeletionPolicy"])
	}
	c := only(t, snapshotStack, "AWS::Kinesis::StreamConsumer")
	if got := jsonString(t, props(c)["StreamARN"]); !strings.Contains(got, "Stream") || !strings.Contains(got, "Arn") {
		t.Errorf("consumer StreamARN = %s, want the stream's Arn", got)
	}
	if props(c)["ConsumerName"] != snapshotStack+"-consumer" {
		t.Errorf("consumer name = %v, want %s-consumer", props(c)["ConsumerName"], snapshotStack)
	}
}

func TestCapacityModes(t *testing.T) {
	tests := map[string]struct {
		stack          string
		tpl            assertions.Template
		mode           string
		autoscaler     bool
		rules          int     // EventBridge rules: the autoscaler's schedule and alarm trigger
		throttlingID   string  // prefix of the write-throttling alarm's logical ID
		periods        float64 // minutes the alarm looks at
		throttledOf    float64 // minutes of those that raise it (0: all)
		capacityWidget string
	}{
		"provisioned (default)": {
			stack: snapshotStack, tpl: synthesized.tDefaults, mode: "PROVISIONED", autoscaler: true, rules: 2,
			throttlingID: "ShardAutoscalerThrottlingAlarm", periods: 1, capacityWidget: "Open shards and scaling actions",
		},
		"on-demand": {
			stack: onDemandStack, tpl: synthesized.tOnDemand, mode: "ON_DEMAND",
			throttlingID: "DashboardWriteThrottlingAlarm", periods: 5, throttledOf: dashboard.OnDemandThrottledMinutes,
			capacityWidget: "Write rate (on-demand",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// GIVEN the stack synthesized in the capacity mode
			s := props(only(t, tc.stack, "AWS::Kinesis::Stream"))
			// THEN the stream is in that mode, with a shard count and shard-level metrics only when provisioned
			if got := jsonString(t, s["StreamModeDetails"]); got != `{"StreamMode":"`+tc.mode+`"}` {
				t.Errorf("StreamModeDetails %s, want %s", got, tc.mode)
			}
			_, shardCount := s["ShardCount"]
			_, shardMetrics := s["DesiredShardLevelMetrics"]
			if shardCount != tc.autoscaler || shardMetrics != tc.autoscaler {
				t.Errorf("ShardCount set %v, shard-level metrics %v: want both %v", shardCount, shardMetrics, tc.autoscaler)
			}
			// AND the autoscaler's function, role, triggers and log group exist only when provisioned
			n := 0
			for id := range synthesized.raw[tc.stack]["Resources"].(map[string]any) {
				if strings.HasPrefix(id, "ShardAutoscaler") {
					n++
				}
			}
			if (n > 0) != tc.autoscaler {
				t.Errorf("%d ShardAutoscaler* resources, want some: %v", n, tc.autoscaler)
			}
			count(t, tc.tpl, "AWS::Events::Rule", tc.rules)
			// AND one write-throttling alarm watches the stream: the autoscaler's trigger, or on-demand the dashboard's
			count(t, tc.tpl, "AWS::CloudWatch::Alarm", 4)
			_, alarm := resourceWithPrefix(t, tc.stack, "AWS::CloudWatch::Alarm", tc.throttlingID)
			a := props(alarm)
			if a["MetricName"] != "WriteProvisionedThroughputExceeded" || a["EvaluationPeriods"] != tc.periods {
				t.Errorf("throttling alarm %s, want WriteProvisionedThroughputExceeded over %v minutes", jsonString(t, a), tc.periods)
			}
			if got, _ := a["DatapointsToAlarm"].(float64); got != tc.throttledOf {
				t.Errorf("throttling alarm raised after %v minutes, want %v", got, tc.throttledOf)
			}
			// AND the dashboard shows the alarm and where the capacity shows in that mode
			body := jsonString(t, props(only(t, tc.stack, "AWS::CloudWatch::Dashboard"))["DashboardBody"])
			if !strings.Contains(body, tc.capacityWidget) || !strings.Contains(body, tc.throttlingID) {
				t.Errorf("dashboard lacks the widget %q or the alarm %s", tc.capacityWidget, tc.throttlingID)
			}
			if strings.Contains(body, scaler.MetricOpenShardCount) != tc.autoscaler {
				t.Errorf("dashboard shows the autoscaler's %s: %v, want %v", scaler.MetricOpenShardCount, !tc.autoscaler, tc.autoscaler)
			}
		})
	}
}

func TestProducerService(t *testing.T) {
	tpl := synthesized.tDefaults
	has(t, tpl, "AWS::ECS::TaskDefinition", map[string]any{
		"Cpu": "512", "Memory": "1024", "NetworkMode": "awsvpc", "RequiresCompatibilities": []any{"FARGATE"},
		"RuntimePlatform": map[string]any{"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"},
	})
	has(t, synthesized.tVariant, "AWS::ECS::TaskDefinition", map[string]any{"Cpu": "1024", "Memory": "2048"})
	c := taskContainer(t, snapshotStack, "Producer", producerservice.ContainerName)
	if c["ReadonlyRootFilesystem"] != true {
		t.Errorf("producer ReadonlyRootFilesystem = %v, want true", c["ReadonlyRootFilesystem"])
	}
	if c["User"] != fargateservice.ContainerUser || strings.HasPrefix(fargateservice.ContainerUser, "0") {
		t.Errorf("producer User = %v, want the non-root %s", c["User"], fargateservice.ContainerUser)
	}
	if got, want := c["StopTimeout"], producerservice.StopTimeout.Seconds(); got != want {
		t.Errorf("producer StopTimeout = %v, want %v (the producer's stop timeout plus a margin)", got, want)
	}
	if producerservice.StopTimeout <= 25e9 || producerservice.StopTimeout > 120e9 {
		t.Errorf("StopTimeout %v: want above the producer's 25 s shutdown and within Fargate's 120 s", producerservice.StopTimeout)
	}
	if got := jsonString(t, c["PortMappings"]); !strings.Contains(got, `"ContainerPort":8080`) {
		t.Errorf("producer port mappings %s, want 8080", got)
	}
	if got := jsonString(t, c["LogConfiguration"]); !strings.Contains(got, `"LogDriver":"awslogs"`) {
		t.Errorf("producer logging %s, want awslogs", got)
	}
	if img := jsonString(t, c["Image"]); !strings.Contains(img, "container-assets") {
		t.Errorf("producer image %s, want the Docker image asset", img)
	}

	_, svc := resourceWithPrefix(t, snapshotStack, "AWS::ECS::Service", "Producer")
	sp := props(svc)
	if sp["LaunchType"] != "FARGATE" {
		t.Errorf("LaunchType = %v", sp["LaunchType"])
	}
	if got := jsonString(t, sp["DeploymentConfiguration"]); !strings.Contains(got, `"DeploymentCircuitBreaker":{"Enable":true,"Rollback":true}`) {
		t.Errorf("DeploymentConfiguration %s, want the circuit breaker with rollback", got)
	}
	net := jsonString(t, sp["NetworkConfiguration"])
	if !strings.Contains(net, `"AssignPublicIp":"DISABLED"`) || !strings.Contains(net, "PrivateSubnet1") || !strings.Contains(net, "PrivateSubnet2") || strings.Contains(net, "Public") && !strings.Contains(net, "AssignPublicIp") {
		t.Errorf("NetworkConfiguration %s, want both private subnets and no public IP", net)
	}

	has(t, tpl, "AWS::ElasticLoadBalancingV2::LoadBalancer", map[string]any{"Scheme": "internet-facing", "Type": "application"})
	has(t, tpl, "AWS::ElasticLoadBalancingV2::TargetGroup", map[string]any{
		"HealthCheckPath": ingest.PathHealthcheck, "HealthCheckIntervalSeconds": 6, "HealthCheckTimeoutSeconds": 5,
		"Port": 8080, "Protocol": "HTTP", "TargetType": "ip",
	})
	tg := only(t, snapshotStack, "AWS::ElasticLoadBalancingV2::TargetGroup")
	if got := jsonString(t, props(tg)["TargetGroupAttributes"]); !strings.Contains(got, `{"Key":"deregistration_delay.timeout_seconds","Value":"30"}`) {
		t.Errorf("target group attributes %s, want a 30 s deregistration delay (the record time to live)", got)
	}
	// HTTP only by default.
	count(t, tpl, "AWS::ElasticLoadBalancingV2::Listener", 1)
	has(t, tpl, "AWS::ElasticLoadBalancingV2::Listener", map[string]any{"Port": 80, "Protocol": "HTTP"})

	// Target tracking at 65 % CPU, 1 to 15 tasks.
	has(t, tpl, "AWS::ApplicationAutoScaling::ScalableTarget", map[string]any{
		"MinCapacity": 1, "MaxCapacity": 15,
		"ResourceId": map[string]any{"Fn::Join": []any{"", []any{"service/", map[string]any{"Ref": "ClusterEB0386A7"}, "/",
			map[string]any{"Fn::GetAtt": []any{"ProducerServiceFE6DE586", "Name"}}}}},
	})
	has(t, tpl, "AWS::ApplicationAutoScaling::ScalingPolicy", map[string]any{
		"PolicyType": "TargetTrackingScaling",
		"TargetTrackingScalingPolicyConfiguration": map[string]any{
			"PredefinedMetricSpecification": map[string]any{"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
			"TargetValue":                   65,
		},
	})
	has(t, synthesized.tVariant, "AWS::ApplicationAutoScaling::ScalableTarget", map[string]any{"MinCapacity": 2, "MaxCapacity": 20})
}

func TestScalingCooldowns(t *testing.T) {
	// The blog's template (aws-samples/amazon-kinesis-data-processor-aws-fargate, cloudformation/deployment.yaml):
	// 60 s out and in for the producer, 10 s out and in for the consumer; the variant sets its own.
	tests := map[string]struct {
		stack, service string
		out, in        float64
	}{
		"producer default": {snapshotStack, "ProducerService", 60, 60},
		"consumer default": {snapshotStack, "ConsumerService", 10, 10},
		"producer variant": {variantStack, "ProducerService", 30, 300},
		"consumer variant": {variantStack, "ConsumerService", 20, 120},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, pol := resourceWithPrefix(t, tc.stack, "AWS::ApplicationAutoScaling::ScalingPolicy", tc.service)
			cfg := props(pol)["TargetTrackingScalingPolicyConfiguration"].(map[string]any)
			if cfg["ScaleOutCooldown"] != tc.out || cfg["ScaleInCooldown"] != tc.in {
				t.Errorf("%s cooldowns out %v in %v, want %v and %v", tc.service, cfg["ScaleOutCooldown"], cfg["ScaleInCooldown"], tc.out, tc.in)
			}
		})
	}
}

func TestLoadBalancerAcceptsOnlyTheInboundRange(t *testing.T) {
	for _, stack := range []string{snapshotStack, variantStack} {
		_, sg := resourceWithPrefix(t, stack, "AWS::EC2::SecurityGroup", "ProducerLoadBalancerSecurityGroup")
		ingress := props(sg)["SecurityGroupIngress"].([]any)
		wantPorts := []float64{80}
		if stack == variantStack {
			wantPorts = []float64{443, 80}
		}
		if len(ingress) != len(wantPorts) {
			t.Fatalf("%s: load balancer ingress %s, want ports %v", stack, jsonString(t, ingress), wantPorts)
		}
		for i, r := range ingress {
			rule := r.(map[string]any)
			if jsonString(t, rule["CidrIp"]) != `{"Ref":"InboundCIDRRange"}` || rule["FromPort"] != wantPorts[i] || rule["ToPort"] != wantPorts[i] {
				t.Errorf("%s: ingress rule %s, want port %v from the InboundCIDRRange parameter only", stack, jsonString(t, rule), wantPorts[i])
			}
		}
		// Nothing anywhere is open to the internet at large.
		for typ, rs := range map[string]map[string]map[string]any{
			"AWS::EC2::SecurityGroup":        resources(t, stack, "AWS::EC2::SecurityGroup"),
			"AWS::EC2::SecurityGroupIngress": resources(t, stack, "AWS::EC2::SecurityGroupIngress"),
		} {
			for id, r := range rs {
				p := props(r)
				in := jsonString(t, p["SecurityGroupIngress"]) + jsonString(t, p["CidrIp"])
				if strings.Contains(in, "0.0.0.0/0") || strings.Contains(in, "::/0") {
					t.Errorf("%s: %s %s admits the whole internet: %s", stack, typ, id, in)
				}
			}
		}
	}
}

func TestHTTPSWithCertificate(t *testing.T) {
	tpl := synthesized.tVariant
	count(t, tpl, "AWS::ElasticLoadBalancingV2::Listener", 2)
	has(t, tpl, "AWS::ElasticLoadBalancingV2::Listener", map[string]any{
		"Port": 443, "Protocol": "HTTPS", "Certificates": []any{map[string]any{"CertificateArn": variantCert}},
	})
	has(t, tpl, "AWS::ElasticLoadBalancingV2::Listener", map[string]any{
		"Port": 80, "Protocol": "HTTP",
		"DefaultActions": []any{map[string]any{"Type": "redirect",
			"RedirectConfig": map[string]any{"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}},
	})
	out := synthesized.raw[variantStack]["Outputs"].(map[string]any)[stacks.OutputLoadBalancerURL]
	if got := jsonString(t, out); !strings.Contains(got, "https://") {
		t.Errorf("variant URL output %s, want https://", got)
	}
}

func TestAutoscaler(t *testing.T) {
	tpl := synthesized.tDefaults
	_, fn := resourceWithPrefix(t, snapshotStack, "AWS::Lambda::Function", "ShardAutoscalerFunction")
	fp := props(fn)
	if fp["Runtime"] != "provided.al2023" || fp["Handler"] != "bootstrap" || jsonString(t, fp["Architectures"]) != `["arm64"]` {
		t.Errorf("function runtime %v handler %v architectures %v, want provided.al2023, bootstrap, arm64", fp["Runtime"], fp["Handler"], fp["Architectures"])
	}
	if fp["ReservedConcurrentExecutions"] != float64(1) {
		t.Errorf("ReservedConcurrentExecutions = %v, want 1 (one decision at a time)", fp["ReservedConcurrentExecutions"])
	}
	env := map[string]string{}
	for k, v := range fp["Environment"].(map[string]any)["Variables"].(map[string]any) {
		if s, ok := v.(string); ok {
			env[k] = s
		} else {
			env[k] = jsonString(t, v)
		}
	}
	want := map[string]string{
		scaler.EnvStreamName: `{"Ref":"Stream862536A4"}`, scaler.EnvMinShards: "1", scaler.EnvMaxShards: "16",
		scaler.EnvShardLevelMetrics: "true", scaler.EnvDryRun: "false",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("function env %s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("function env %v, want exactly %v", env, want)
	}
	has(t, tpl, "AWS::Events::Rule", map[string]any{"ScheduleExpression": "rate(1 minute)", "State": "ENABLED"})
	// The alarm rule fires on the throttling alarm's state change to ALARM, and on that alarm only.
	alarmID, _ := resourceWithPrefix(t, snapshotStack, "AWS::CloudWatch::Alarm", "ShardAutoscalerThrottlingAlarm")
	_, rule := resourceWithPrefix(t, snapshotStack, "AWS::Events::Rule", "ShardAutoscalerOnThrottling")
	if got, want := jsonString(t, props(rule)["EventPattern"]), `{"detail":{"state":{"value":["ALARM"]}},"detail-type":["CloudWatch Alarm State Change"],"resources":[{"Fn::GetAtt":["`+alarmID+`","Arn"]}],"source":["aws.cloudwatch"]}`; got != want {
		t.Errorf("alarm rule pattern %s, want %s", got, want)
	}
	has(t, tpl, "AWS::CloudWatch::Alarm", map[string]any{
		"MetricName": "WriteProvisionedThroughputExceeded", "Namespace": "AWS/Kinesis", "Statistic": "Sum",
		"Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
	})
	count(t, tpl, "AWS::Lambda::Permission", 2) // one per rule
	has(t, tpl, "AWS::Lambda::EventInvokeConfig", map[string]any{"MaximumEventAgeInSeconds": 120, "MaximumRetryAttempts": 0})
	env = map[string]string{}
	_, vfn := resourceWithPrefix(t, variantStack, "AWS::Lambda::Function", "ShardAutoscalerFunction")
	vars := props(vfn)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if vars[scaler.EnvMinShards] != "2" || vars[scaler.EnvMaxShards] != "32" || vars[scaler.EnvDryRun] != "true" {
		t.Errorf("variant function env %v, want min 2, max 32, dry run", vars)
	}
}

func TestAutoscalerBundleIsALinuxArm64Binary(t *testing.T) {
	// GIVEN the Lambda asset staged by the local bundler
	_, fn := resourceWithPrefix(t, snapshotStack, "AWS::Lambda::Function", "ShardAutoscalerFunction")
	key, _ := props(fn)["Code"].(map[string]any)["S3Key"].(string)
	hash := strings.TrimSuffix(key, ".zip")
	if hash == "" {
		t.Fatalf("function code %v has no asset S3Key", props(fn)["Code"])
	}
	// THEN it holds bootstrap, a static ELF for arm64
	f, err := elf.Open(filepath.Join(synthesized.outdir, "asset."+hash, "bootstrap"))
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("bootstrap is %v %v, want EM_AARCH64 ELFCLASS64", f.Machine, f.Class)
	}
	if interp := f.Section(".interp"); interp != nil {
		t.Errorf("bootstrap has an interpreter section: want a static binary (CGO_ENABLED=0)")
	}
	args := (&autoscaler.GoBundler{Package: autoscaler.HandlerPackage}).BuildArgs("/out")
	if !slices.Contains(args, "lambda.norpc") || !slices.Contains(args, "-buildvcs=false") || args[len(args)-1] != autoscaler.HandlerPackage {
		t.Errorf("build args %v, want -tags lambda.norpc, -buildvcs=false and the handler package", args)
	}
}

func TestClusterHasContainerInsights(t *testing.T) {
	has(t, synthesized.tDefaults, "AWS::ECS::Cluster", map[string]any{
		"ClusterSettings": []any{map[string]any{"Name": "containerInsights", "Value": "enabled"}},
	})
}

func TestEveryLogGroupHasRetention(t *testing.T) {
	for stack, days := range map[string]float64{snapshotStack: stacks.DefaultLogRetentionDays, variantStack: 90} {
		groups := resources(t, stack, "AWS::Logs::LogGroup")
		if len(groups) < 3 {
			t.Errorf("%s: %d log groups, want one per service, the Lambda and the flow logs", stack, len(groups))
		}
		for id, g := range groups {
			if got := props(g)["RetentionInDays"]; got != days {
				t.Errorf("%s: log group %s RetentionInDays = %v, want %v", stack, id, got, days)
			}
		}
	}
	// Every container and the function log to one of those groups.
	for _, fn := range resources(t, snapshotStack, "AWS::Lambda::Function") {
		if fn["Properties"].(map[string]any)["Handler"] != "bootstrap" {
			continue // the CDK's own custom-resource provider
		}
		if _, ok := props(fn)["LoggingConfig"].(map[string]any)["LogGroup"]; !ok {
			t.Errorf("autoscaler function has no LoggingConfig.LogGroup")
		}
	}
}

func TestOutputs(t *testing.T) {
	outputs := synthesized.raw[snapshotStack]["Outputs"].(map[string]any)
	for _, name := range []string{stacks.OutputLoadBalancerURL, stacks.OutputStreamName} {
		if _, ok := outputs[name]; !ok {
			t.Errorf("no output %s in %v", name, outputs)
		}
	}
	if got := jsonString(t, outputs[stacks.OutputLoadBalancerURL]); !strings.Contains(got, "http://") || !strings.Contains(got, "DNSName") {
		t.Errorf("URL output %s, want http:// and the load balancer's DNS name", got)
	}
	// The consumer's log group, which users tail to see the records (aws logs tail <group> --follow).
	logsID, _ := resourceWithPrefix(t, snapshotStack, "AWS::Logs::LogGroup", "ConsumerLogs")
	if got, want := jsonString(t, outputs[stacks.OutputConsumerLogGroup].(map[string]any)["Value"]), `{"Ref":"`+logsID+`"}`; got != want {
		t.Errorf("consumer log group output %s, want %s", got, want)
	}
}

func TestEnvironmentAgnostic(t *testing.T) {
	// Synth must never need a lookup: no context was filled in, and no ARN names an account.
	b, err := os.ReadFile(filepath.Join(synthesized.outdir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "missing") {
		t.Errorf("manifest.json reports missing context (a lookup): %s", b)
	}
	if strings.Contains(string(b), `"environment": "aws://`) && !strings.Contains(string(b), "unknown-account/unknown-region") {
		t.Errorf("stacks are bound to an environment")
	}
}

func TestServiceImagesStageOnlyWhatTheirDockerfilesCopy(t *testing.T) {
	// GIVEN the cloud assembly's asset manifest
	b, err := os.ReadFile(filepath.Join(synthesized.outdir, snapshotStack+".assets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		DockerImages map[string]struct {
			Source struct {
				Directory  string `json:"directory"`
				DockerFile string `json:"dockerFile"`
				Platform   string `json:"platform"`
			} `json:"source"`
		} `json:"dockerImages"`
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	// THEN there is one arm64 image per service, built from its Dockerfile, with a context of go.mod, go.sum and
	// services/ only (no cdk.out, node_modules, .git, CDK code: their changes do not rebuild the images)
	var dockerfiles []string
	for _, img := range manifest.DockerImages {
		dockerfiles = append(dockerfiles, img.Source.DockerFile)
		if img.Source.Platform != "linux/arm64" {
			t.Errorf("%s: platform %q, want linux/arm64", img.Source.DockerFile, img.Source.Platform)
		}
		dir := filepath.Join(synthesized.outdir, img.Source.Directory)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{".dockerignore", "go.mod", "go.sum", "services"}) {
			t.Errorf("%s: build context %v, want [.dockerignore go.mod go.sum services]", img.Source.DockerFile, names)
		}
		if _, err := os.Stat(filepath.Join(dir, img.Source.DockerFile)); err != nil {
			t.Errorf("%s is not in its build context: %v", img.Source.DockerFile, err)
		}
	}
	slices.Sort(dockerfiles)
	if want := []string{stacks.ConsumerDockerfile, stacks.ProducerDockerfile}; !slices.Equal(dockerfiles, want) {
		t.Errorf("image Dockerfiles %v, want %v", dockerfiles, want)
	}
}

func TestServiceBinariesBuildFromTheirImageContext(t *testing.T) {
	// GIVEN the services' image build context: go.mod, go.sum and services/ (TestServiceImagesStageOnlyWhatTheirDockerfilesCopy)
	for _, dockerfile := range []string{stacks.ProducerDockerfile, stacks.ConsumerDockerfile, stacks.ConsumerPythonDockerfile} {
		pkg := "./" + filepath.Dir(dockerfile)
		// WHEN the packages its binary is built from are listed
		out, err := exec.Command("go", "list", "-C", "..", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		// THEN every package of this module among them is under services/, so the image builds
		for dep := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(dep, "github.com/streamproc/streamproc/") && !strings.HasPrefix(dep, "github.com/streamproc/streamproc/services/") {
				t.Errorf("%s imports %s, which its image's build context does not hold", pkg, dep)
			}
		}
	}
}
