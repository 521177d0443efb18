// Package stacks composes the constructs into the deployable stack of the streaming data processor: network,
// Kinesis stream with its fan-out consumer, the producer service behind a load balancer, the consumer service with
// its lease table, the shard autoscaler (for a provisioned stream), and the dashboard with its alarms. The stack is
// environment-agnostic: synth makes no AWS call and needs no credentials.
package stacks

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/constructs/autoscaler"
	"github.com/streamproc/streamproc/constructs/consumerservice"
	"github.com/streamproc/streamproc/constructs/dashboard"
	"github.com/streamproc/streamproc/constructs/datalake"
	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/constructs/network"
	"github.com/streamproc/streamproc/constructs/producerservice"
	"github.com/streamproc/streamproc/constructs/source"
	"github.com/streamproc/streamproc/constructs/stream"
	"github.com/streamproc/streamproc/services/s3sink"
)

// Names in the template that users and CI refer to.
const (
	// ParameterInboundCIDRRange is the CloudFormation parameter naming the only address range the load balancer
	// accepts, as in the blog's template.
	ParameterInboundCIDRRange = "InboundCIDRRange"
	// InboundCIDRPattern validates the parameter: an IPv4 CIDR such as 203.0.113.0/24.
	InboundCIDRPattern = `^(([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])\.){3}([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])/([0-9]|[12][0-9]|3[0-2])$`
	// Output names.
	OutputLoadBalancerURL  = "LoadBalancerUrl"
	OutputDashboardURL     = "DashboardUrl"
	OutputStreamName       = "StreamName"
	OutputLeaseTableName   = "LeaseTableName"
	OutputConsumerARN      = "StreamConsumerArn"
	OutputConsumerLogGroup = "ConsumerLogGroupName"
	// Outputs of the data lake (consumerSink=s3).
	OutputLakeBucket    = "LakeBucketName"
	OutputLakeTable     = "LakeTable"
	OutputLakeWorkGroup = "LakeAthenaWorkGroup"
	// ProducerDockerfile and ConsumerDockerfile are the services' Dockerfiles, relative to the module root.
	ProducerDockerfile = "services/producer/Dockerfile"
	ConsumerDockerfile = "services/consumer/Dockerfile"
	// ConsumerPythonDockerfile is the consumer with a Python MultiLang record processor (amazon_kclpy's sample and
	// its properties file), for ContextConsumerDockerfile.
	ConsumerPythonDockerfile = "services/consumer/python.Dockerfile"
)

// StreamProcStackProps configures the stack. The zero value deploys the documented defaults.
type StreamProcStackProps struct {
	awscdk.StackProps
	// Config is the deployment's choices (usually ConfigFromContext). Default: every Config default.
	Config Config
	// ModuleRoot is the repository root (go.mod): the Docker build context and the Lambda's Go module.
	// Default: found from the working directory upwards.
	ModuleRoot string
}

// StreamProcStack is the stack and the constructs it composes.
type StreamProcStack struct {
	awscdk.Stack
	// Network is the VPC the services run in.
	Network *network.Network
	// Stream is the Kinesis stream and its enhanced fan-out consumer.
	Stream *stream.Stream
	// Cluster is the ECS cluster of both services (Container Insights on).
	Cluster awsecs.Cluster
	// Producer is the load balancer and the producer service writing to Stream.
	Producer *producerservice.ProducerService
	// Consumer is the lease table and the consumer service reading Stream.
	Consumer *consumerservice.ConsumerService
	// Autoscaler is the Lambda that reshards Stream; nil for an on-demand stream.
	Autoscaler *autoscaler.Autoscaler
	// Dashboard is the CloudWatch dashboard and its alarms.
	Dashboard *dashboard.Dashboard
	// Lake is the bucket, Glue table and Athena workgroup the consumer lands the records in; nil with
	// consumerSink=log or a MultiLang consumer.
	Lake *datalake.DataLake
}

// NewStreamProcStack creates the stack. It panics with a message naming the setting when the configuration is
// invalid (a synth must stop there, before anything is deployed).
func NewStreamProcStack(scope constructs.Construct, id string, props *StreamProcStackProps) *StreamProcStack {
	var p StreamProcStackProps
	if props != nil {
		p = *props
	}
	cfg := p.Config.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(fmt.Sprintf("stack %s: %v", id, err))
	}
	root := p.ModuleRoot
	if root == "" {
		wd, err := os.Getwd()
		if err == nil {
			root, err = source.ModuleRoot(wd)
		}
		if err != nil {
			panic(fmt.Sprintf("stack %s: %v", id, err))
		}
	}
	if _, err := os.Stat(filepath.Join(root, cfg.ConsumerDockerfile)); err != nil {
		panic(fmt.Sprintf("stack %s: %s=%q: %v", id, ContextConsumerDockerfile, cfg.ConsumerDockerfile, err))
	}
	sp := p.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String("Streaming data processor: ALB + Fargate producer -> Kinesis -> Fargate consumer (KCL leases in DynamoDB), shard autoscaler, dashboard")
	}
	stack := awscdk.NewStack(scope, &id, &sp)
	s := &StreamProcStack{Stack: stack}
	logRetention := retentionDays[cfg.LogRetentionDays]
	dataRemoval := awscdk.RemovalPolicy_DESTROY
	if cfg.RetainData {
		dataRemoval = awscdk.RemovalPolicy_RETAIN
	}

	inboundCidr := awscdk.NewCfnParameter(stack, jsii.String(ParameterInboundCIDRRange), &awscdk.CfnParameterProps{
		Type:                  jsii.String("String"),
		Description:           jsii.String("The only IPv4 address range (CIDR) the producer's load balancer accepts, e.g. 203.0.113.0/24"),
		AllowedPattern:        jsii.String(InboundCIDRPattern),
		ConstraintDescription: jsii.String("must be an IPv4 CIDR range such as 203.0.113.0/24"),
		MinLength:             jsii.Number(9),
		MaxLength:             jsii.Number(18),
	})

	s.Network = network.New(stack, jsii.String("Network"), &network.Props{
		NatGateways:        cfg.NatGateways,
		InterfaceEndpoints: cfg.InterfaceEndpoints,
		LogRetention:       logRetention,
	})
	s.Stream = stream.New(stack, jsii.String("Stream"), &stream.Props{
		CapacityMode:   cfg.CapacityMode,
		ShardCount:     cfg.ShardCount,
		RetentionHours: cfg.RetentionHours,
		ConsumerName:   jsii.String(id + "-consumer"),
		RemovalPolicy:  dataRemoval,
	})
	s.Cluster = awsecs.NewCluster(stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                 s.Network.Vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})
	var cert *string
	if cfg.CertificateArn != "" {
		cert = jsii.String(cfg.CertificateArn)
	}
	s.Producer = producerservice.New(stack, jsii.String("Producer"), &producerservice.Props{
		Cluster:        s.Cluster,
		Stream:         s.Stream.Stream,
		Image:          source.ServiceImage(root, ProducerDockerfile),
		InboundCidr:    inboundCidr.ValueAsString(),
		CertificateArn: cert,
		Sizing: fargateservice.Sizing{
			CPU:              cfg.ProducerCPU,
			MemoryMiB:        cfg.ProducerMemoryMiB,
			MinTasks:         cfg.ProducerMinTasks,
			MaxTasks:         cfg.ProducerMaxTasks,
			LogRetention:     logRetention,
			ScaleOutCooldown: time.Duration(cfg.ProducerScaleOutCooldownSeconds) * time.Second,
			ScaleInCooldown:  time.Duration(cfg.ProducerScaleInCooldownSeconds) * time.Second,
		},
	})
	var sink *consumerservice.Sink
	if cfg.LakeEnabled() {
		s.Lake = datalake.New(stack, jsii.String("Lake"), &datalake.Props{
			DatabaseName:           lakeDatabaseName(id),
			WorkGroupName:          id + "-lake",
			Format:                 s3sink.Format(cfg.LakeFormat),
			IntelligentTieringDays: cfg.LakeIntelligentTieringDays,
			ExpirationDays:         cfg.LakeExpirationDays,
			RemovalPolicy:          dataRemoval,
		})
		sink = &consumerservice.Sink{BucketName: s.Lake.Bucket.BucketName(), Prefix: s.Lake.Prefix, Format: s.Lake.Format}
	}
	s.Consumer = consumerservice.New(stack, jsii.String("Consumer"), &consumerservice.Props{
		Cluster:                 s.Cluster,
		Stream:                  s.Stream.Stream,
		StreamConsumer:          s.Stream.Consumer,
		Image:                   source.ServiceImage(root, cfg.ConsumerDockerfile),
		ReadMode:                cfg.ConsumerReadMode,
		ProcessorCommand:        cfg.ConsumerProcessorCommand,
		LeaseTableRemovalPolicy: dataRemoval,
		Sink:                    sink,
		Sizing: fargateservice.Sizing{
			CPU:              cfg.ConsumerCPU,
			MemoryMiB:        cfg.ConsumerMemoryMiB,
			MinTasks:         cfg.ConsumerMinTasks,
			MaxTasks:         cfg.ConsumerMaxTasks,
			LogRetention:     logRetention,
			ScaleOutCooldown: time.Duration(cfg.ConsumerScaleOutCooldownSeconds) * time.Second,
			ScaleInCooldown:  time.Duration(cfg.ConsumerScaleInCooldownSeconds) * time.Second,
		},
	})
	if s.Lake != nil {
		s.Lake.GrantWrite(s.Consumer.TaskDefinition.TaskRole())
	}
	throttlingAlarm := s.addAutoscaler(cfg, root, logRetention)
	s.Dashboard = dashboard.New(stack, jsii.String("Dashboard"), &dashboard.Props{
		DashboardName:      jsii.String(id),
		Stream:             s.Stream.Stream,
		ConsumerName:       s.Stream.Consumer.StreamConsumerName(),
		ConsumerDimensions: s.Consumer.MetricDimensions,
		Cluster:            s.Cluster,
		ProducerService:    s.Producer.Service,
		ConsumerService:    s.Consumer.Service,
		LoadBalancer:       s.Producer.LoadBalancer,
		ThrottlingAlarm:    throttlingAlarm,
		OnDemand:           cfg.CapacityMode == stream.OnDemand,
		Sink:               s.Lake != nil,
	})

	awscdk.NewCfnOutput(stack, jsii.String(OutputLoadBalancerURL), &awscdk.CfnOutputProps{
		Value: s.Producer.URL, Description: jsii.String("The producer's URL: curl -d '{\"data\":\"...\"}' against it"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputStreamName), &awscdk.CfnOutputProps{
		Value: s.Stream.Stream.StreamName(), Description: jsii.String("The Kinesis stream"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputDashboardURL), &awscdk.CfnOutputProps{
		Value: s.Dashboard.URL, Description: jsii.String("The CloudWatch dashboard"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputLeaseTableName), &awscdk.CfnOutputProps{
		Value: s.Consumer.LeaseTable.TableName(), Description: jsii.String("The consumers' lease table (also their application name)"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputConsumerLogGroup), &awscdk.CfnOutputProps{
		Value: s.Consumer.LogGroup.LogGroupName(), Description: jsii.String("The consumer's log group (with consumerSink=log, each record as a JSON line: aws logs tail <name> --follow)"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputConsumerARN), &awscdk.CfnOutputProps{
		Value: s.Stream.Consumer.StreamConsumerArn(), Description: jsii.String("The enhanced fan-out consumer the consumer service reads through"),
	})
	if s.Lake != nil {
		addLakeOutputs(stack, s.Lake)
	}
	return s
}

// addLakeOutputs names the lake's bucket, table and Athena workgroup (README: the query example uses them).
func addLakeOutputs(stack awscdk.Stack, lake *datalake.DataLake) {
	awscdk.NewCfnOutput(stack, jsii.String(OutputLakeBucket), &awscdk.CfnOutputProps{
		Value: lake.Bucket.BucketName(), Description: jsii.String("The data lake's bucket: the records land under " + lake.Prefix + "/dt=YYYY-MM-DD/hr=HH/"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputLakeTable), &awscdk.CfnOutputProps{
		Value: jsii.String(lake.DatabaseName + "." + datalake.TableName), Description: jsii.String("The Glue table of the records (database.table), partitioned by dt and hr"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputLakeWorkGroup), &awscdk.CfnOutputProps{
		Value: lake.WorkGroup.Ref(), Description: jsii.String("The Athena workgroup to query the table with (aws athena start-query-execution --work-group <name>)"),
	})
}

// lakeDatabaseName is the Glue database of stack id: lowercase, with every character Glue does not take replaced.
func lakeDatabaseName(id string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9_]+`).ReplaceAllString(strings.ToLower(id), "_"), "_") + "_lake"
}

// addAutoscaler creates the shard autoscaler of a provisioned stream and returns its throttling alarm; an on-demand
// stream has none, and gets nil.
func (s *StreamProcStack) addAutoscaler(cfg Config, root string, logRetention awslogs.RetentionDays) awscloudwatch.IAlarm {
	if cfg.CapacityMode != stream.Provisioned {
		return nil
	}
	s.Autoscaler = autoscaler.New(s.Stack, jsii.String("ShardAutoscaler"), &autoscaler.Props{
		Stream:       s.Stream.Stream,
		ModuleRoot:   root,
		MinShards:    cfg.MinShards,
		MaxShards:    cfg.MaxShards,
		DryRun:       cfg.AutoscalerDryRun,
		LogRetention: logRetention,
	})
	return s.Autoscaler.ThrottlingAlarm
}

// ApplyNag runs the cdk-nag AwsSolutions rules over scope at synth: an unsuppressed error fails the synth.
func ApplyNag(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}
