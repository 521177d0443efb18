// Package autoscaler defines the shard autoscaler: the Go Lambda in lambda/autoscaler, built by local bundling (no
// Docker), invoked every minute by an EventBridge schedule and at once when the stream's write-throttling alarm goes
// into ALARM. Its role may change the shard count of this stream only, and read CloudWatch metrics.
package autoscaler

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
)

// Defaults of Props and the function's fixed shape.
const (
	DefaultMinShards = 1
	DefaultMaxShards = 16
	// HandlerPackage is the Lambda's package, relative to the module root.
	HandlerPackage = "./lambda/autoscaler"
	// Timeout bounds one decision (a few Kinesis and CloudWatch calls); the schedule's period is one minute.
	Timeout = 50 * time.Second
	// MaxEventAge drops an invocation that waited longer than this (a throttled duplicate, for example): a newer
	// scheduled one comes every minute and decides from fresher metrics.
	MaxEventAge = 2 * time.Minute
	// MemoryMiB also sets the function's CPU share; 256 MiB is plenty for a few API calls.
	MemoryMiB = 256
)

// KinesisActions are the Kinesis API calls the scaler makes (see scaler.KinesisAPI), granted on the stream only.
var KinesisActions = []string{
	"kinesis:DescribeStreamSummary",
	"kinesis:ListShards",
	"kinesis:ListStreamConsumers",
	"kinesis:ListTagsForStream",
	"kinesis:AddTagsToStream",
	"kinesis:UpdateShardCount",
	"kinesis:SplitShard",
	"kinesis:MergeShards",
}

// Props configures an Autoscaler. Stream and ModuleRoot are required.
type Props struct {
	// Stream is the stream to scale. Required.
	Stream awskinesis.IStream
	// ModuleRoot is the directory of the Go module (go.mod) the handler is built from. Required.
	ModuleRoot string
	// MinShards is the fewest shards the function scales in to. Default: DefaultMinShards.
	MinShards int
	// MaxShards is the most shards the function scales out to; at least MinShards. Default: DefaultMaxShards.
	MaxShards int
	// DryRun makes the function decide and log without resharding. Default: false.
	DryRun bool
	// LogRetention is how long the function's logs are kept. Default: one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy applies to the log group. Default: awscdk.RemovalPolicy_DESTROY.
	LogRemovalPolicy awscdk.RemovalPolicy
}

// Autoscaler is the function, its triggers and the alarm that triggers it.
type Autoscaler struct {
	constructs.Construct
	// Function is the Go Lambda (arm64, one concurrent execution) that makes one scaling decision per invocation.
	Function awslambda.Function
	// Role is the function's own role: KinesisActions on the stream, cloudwatch:GetMetricData, writes to LogGroup.
	Role awsiam.Role
	// LogGroup receives the function's logs.
	LogGroup awslogs.LogGroup
	// ThrottlingAlarm is in ALARM when the stream refused writes (WriteProvisionedThroughputExceeded) in the last
	// minute; its state change invokes the function at once.
	ThrottlingAlarm awscloudwatch.Alarm
	// Schedule invokes the function every minute.
	Schedule awsevents.Rule
	// AlarmRule invokes the function when ThrottlingAlarm goes to ALARM, without waiting for Schedule.
	AlarmRule awsevents.Rule
}

// Environment is the function's environment: the stream and the bounds; the policy's thresholds keep the scaler's
// documented defaults.
func Environment(streamName *string, minShards, maxShards int, dryRun bool) map[string]*string {
	return map[string]*string{
		scaler.EnvStreamName:        streamName,
		scaler.EnvMinShards:         jsii.String(strconv.Itoa(minShards)),
		scaler.EnvMaxShards:         jsii.String(strconv.Itoa(maxShards)),
		scaler.EnvShardLevelMetrics: jsii.String("true"),
		scaler.EnvDryRun:            jsii.String(strconv.FormatBool(dryRun)),
	}
}

// New creates the autoscaler. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *Autoscaler {
	if props == nil || props.Stream == nil || props.ModuleRoot == "" {
		panic("autoscaler: Stream and ModuleRoot are required")
	}
	p := *props
	if p.MinShards == 0 {
		p.MinShards = DefaultMinShards
	}
	if p.MaxShards == 0 {
		p.MaxShards = DefaultMaxShards
	}
	if p.MinShards < 1 || p.MaxShards < p.MinShards {
		panic(fmt.Sprintf("autoscaler: MinShards=%d MaxShards=%d, want 1 <= MinShards <= MaxShards", p.MinShards, p.MaxShards))
	}
	if p.LogRetention == "" {
		p.LogRetention = awslogs.RetentionDays_ONE_MONTH
	}
	if p.LogRemovalPolicy == "" {
		p.LogRemovalPolicy = awscdk.RemovalPolicy_DESTROY
	}

	this := constructs.NewConstruct(scope, id)
	a := &Autoscaler{Construct: this}
	a.LogGroup = awslogs.NewLogGroup(this, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     p.LogRetention,
		RemovalPolicy: p.LogRemovalPolicy,
	})
	// An own role instead of the AWSLambdaBasicExecutionRole managed policy: it may write to this log group only.
	a.Role = awsiam.NewRole(this, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Shard autoscaler: reshard one stream, read CloudWatch metrics, write its log group"),
	})
	a.LogGroup.GrantWrite(a.Role)

	bundler := &GoBundler{ModuleRoot: p.ModuleRoot, Package: HandlerPackage}
	env := Environment(p.Stream.StreamName(), p.MinShards, p.MaxShards, p.DryRun)
	a.Function = awslambda.NewFunction(this, jsii.String("Function"), &awslambda.FunctionProps{
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code: awslambda.Code_FromAsset(jsii.String(filepath.Join(p.ModuleRoot, "lambda", "autoscaler")), &awss3assets.AssetOptions{
			AssetHashType: awscdk.AssetHashType_OUTPUT,
			Bundling: &awscdk.BundlingOptions{
				// Required by the API; never pulled: the local bundler always succeeds or fails the synth.
				Image: awscdk.DockerImage_FromRegistry(jsii.String("public.ecr.aws/docker/library/golang:1.26")),
				Local: bundler,
			},
		}),
		Role:                         a.Role,
		LogGroup:                     a.LogGroup,
		Environment:                  &env,
		MemorySize:                   jsii.Number(MemoryMiB),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(Timeout.Seconds())),
		ReservedConcurrentExecutions: jsii.Number(1), // one decision at a time: two would reshard twice
		MaxEventAge:                  awscdk.Duration_Seconds(jsii.Number(MaxEventAge.Seconds())),
		RetryAttempts:                jsii.Number(0), // the next scheduled run retries with fresh metrics
		Description:                  jsii.String("Kinesis shard autoscaler (lambda/autoscaler)"),
	})

	actions := make([]*string, len(KinesisActions))
	for i, s := range KinesisActions {
		actions[i] = jsii.String(s)
	}
	p.Stream.Grant(a.Role, actions...)
	awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
		Grantee:      a.Role,
		Actions:      jsii.Strings("cloudwatch:GetMetricData"),
		ResourceArns: jsii.Strings("*"),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(a.Role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("cloudwatch:GetMetricData supports no resource-level permissions (AWS requires Resource *); " +
			"the autoscaler reads only the stream's AWS/Kinesis metrics with it (stream and shard level)."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))

	a.ThrottlingAlarm = awscloudwatch.NewAlarm(this, jsii.String("ThrottlingAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("The stream refused writes (WriteProvisionedThroughputExceeded) in the last minute; invokes the shard autoscaler"),
		Metric: p.Stream.MetricWriteProvisionedThroughputExceeded(&awscloudwatch.MetricOptions{
			Statistic: jsii.String("Sum"),
			Period:    awscdk.Duration_Minutes(jsii.Number(1)),
		}),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})

	target := awseventstargets.NewLambdaFunction(a.Function, nil)
	a.Schedule = awsevents.NewRule(this, jsii.String("EveryMinute"), &awsevents.RuleProps{
		Description: jsii.String("Runs one shard autoscaling decision every minute"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
		Targets:     &[]awsevents.IRuleTarget{target},
	})
	a.AlarmRule = awsevents.NewRule(this, jsii.String("OnThrottling"), &awsevents.RuleProps{
		Description: jsii.String("Runs a shard autoscaling decision as soon as the stream throttles writes"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.cloudwatch"),
			DetailType: jsii.Strings("CloudWatch Alarm State Change"),
			Resources:  &[]*string{a.ThrottlingAlarm.AlarmArn()},
			Detail: &map[string]interface{}{
				"state": map[string]interface{}{"value": []string{"ALARM"}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{target},
	})
	return a
}
