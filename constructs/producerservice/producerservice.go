// Package producerservice defines the producer's HTTP front: an internet-facing Application Load Balancer that
// accepts only one address range, and the producer service on Fargate (ARM64, private subnets, read-only root file
// system, non-root) scaled on CPU, with a deployment circuit breaker that rolls back. The container's environment is
// built from the producer's own settings constants, so a renamed variable breaks the build, not the deployment.
package producerservice

import (
	"cmp"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	elb "github.com/aws/aws-cdk-go/awscdk/v2/awselasticloadbalancingv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/streamproc/streamproc/constructs/fargateservice"
	"github.com/streamproc/streamproc/services/ingest"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/producer/settings"
	"github.com/streamproc/streamproc/services/telemetry"
)

// Defaults of Props and the fixed shape of the service (the shape it shares with the consumer, and the other
// defaults of Sizing, are in package fargateservice).
const (
	// DefaultMaxTasks is the default of Sizing.MaxTasks.
	DefaultMaxTasks = 15
	// DefaultScaleOutCooldown and DefaultScaleInCooldown are the defaults of Sizing's cooldowns: the blog's
	// template (aws-samples/amazon-kinesis-data-processor-aws-fargate, cloudformation/deployment.yaml) uses 60 s
	// both ways for the producer. A task scaled in drains its connections for the deregistration delay first.
	DefaultScaleOutCooldown = 60 * time.Second
	DefaultScaleInCooldown  = 60 * time.Second
	// ContainerName names the producer container in the task definition.
	ContainerName = "producer"
	// HealthCheckInterval and HealthCheckTimeout are the target group's health check timing.
	HealthCheckInterval = 6 * time.Second
	HealthCheckTimeout  = 5 * time.Second
	// HealthCheckGracePeriod gives new tasks two health check rounds before ECS counts the load balancer's verdict.
	HealthCheckGracePeriod = 30 * time.Second
	// stopTimeoutMargin is the time ECS waits after the producer's own stop timeout before SIGKILL.
	stopTimeoutMargin = 5 * time.Second
)

// StopTimeout is the container's ECS stop timeout: the producer's whole shutdown (settings.DefaultShutdownTimeout:
// drain window, requests in flight, final flush) plus a margin, so SIGKILL never cuts the final flush.
const StopTimeout = settings.DefaultShutdownTimeout + stopTimeoutMargin

// DeregistrationDelay is how long the load balancer lets a deregistered task finish its requests: a request waits
// for Kinesis at most the record time to live (kpl.DefaultRecordTTL).
const DeregistrationDelay = kpl.DefaultRecordTTL

// StreamActions are the Kinesis calls the producer makes (services/kpl's KinesisAPI), granted on the stream only.
// The stream's GrantWrite would add PutRecord, which the producer never calls.
var StreamActions = []string{
	"kinesis:ListShards",
	"kinesis:PutRecords",
}

// Props configures a ProducerService. Cluster, Stream, Image and InboundCidr are required.
type Props struct {
	// Cluster is the ECS cluster (and through it the VPC) the service runs in. Required.
	Cluster awsecs.ICluster
	// Stream is the stream the producer writes to. Required.
	Stream awskinesis.IStream
	// Image is the producer's container image (built from services/producer/Dockerfile by the stack). Required.
	Image awsecs.ContainerImage
	// InboundCidr is the only IPv4 address range the load balancer accepts (a CloudFormation parameter's value, or
	// a literal CIDR). Required.
	InboundCidr *string
	// CertificateArn, when set, makes the load balancer serve HTTPS on 443 with this ACM certificate and redirect
	// HTTP on 80 to it. Default: none, plain HTTP on 80.
	CertificateArn *string
	// Sizing sizes and scales the service. Default: fargateservice's defaults, at most DefaultMaxTasks tasks,
	// DefaultScaleOutCooldown and DefaultScaleInCooldown.
	fargateservice.Sizing
}

// ProducerService is the load balancer and the Fargate service behind it.
type ProducerService struct {
	constructs.Construct
	// LoadBalancer is the internet-facing application load balancer in the public subnets.
	LoadBalancer elb.ApplicationLoadBalancer
	// LoadBalancerGroup is the load balancer's security group: it admits only Props.InboundCidr.
	LoadBalancerGroup awsec2.SecurityGroup
	// Listener is the listener that forwards to the service (HTTPS with a certificate, else HTTP).
	Listener elb.ApplicationListener
	// RedirectListener is the HTTP listener redirecting to HTTPS; nil without a certificate.
	RedirectListener elb.ApplicationListener
	// TargetGroup is the service's tasks behind Listener, health-checked on ingest.PathHealthcheck.
	TargetGroup elb.ApplicationTargetGroup
	// Resources are the log group, task definition, container, Fargate service and its scaling.
	fargateservice.Resources
	// URL is the load balancer's URL (http:// or https:// and its DNS name).
	URL *string
}

// Environment is the producer container's environment: every variable the producer reads in AWS (the local-only
// LISTEN_HOST and KINESIS_ENDPOINT are left out), set from the producer's own defaults.
func Environment(streamName *string) map[string]*string {
	return map[string]*string{
		settings.EnvStreamName:        streamName,
		settings.EnvRegion:            awscdk.Aws_REGION(),
		settings.EnvPort:              jsii.String(strconv.Itoa(settings.DefaultPort)),
		settings.EnvMaxBufferedTime:   jsii.String(kpl.DefaultMaxBufferedTime.String()),
		settings.EnvRecordTTL:         jsii.String(kpl.DefaultRecordTTL.String()),
		settings.EnvMaxAggregateBytes: jsii.String(strconv.Itoa(kpl.DefaultMaxAggregateBytes)),
		settings.EnvMaxBufferedBytes:  jsii.String(strconv.Itoa(kpl.DefaultMaxBufferedBytes)),
		settings.EnvRateLimitPercent:  jsii.String(strconv.Itoa(kpl.DefaultRateLimitPercent)),
		settings.EnvMaxInFlight:       jsii.String(strconv.Itoa(kpl.DefaultMaxInFlight)),
		settings.EnvDrainWindow:       jsii.String(settings.DefaultDrainWindow.String()),
		settings.EnvShutdownTimeout:   jsii.String(settings.DefaultShutdownTimeout.String()),
		settings.EnvLogLevel:          jsii.String("info"),
		settings.EnvMetricsNamespace:  jsii.String(telemetry.DefaultNamespace),
		settings.EnvMetricsInterval:   jsii.String(telemetry.DefaultFlushInterval.String()),
	}
}

// New creates the producer service. It panics when props are invalid.
func New(scope constructs.Construct, id *string, props *Props) *ProducerService {
	if props == nil {
		panic("producerservice: props are nil, want Cluster, Stream, Image and InboundCidr")
	}
	p := *props
	if p.Cluster == nil || p.Stream == nil || p.Image == nil || p.InboundCidr == nil {
		panic(fmt.Sprintf("producerservice: Cluster, Stream, Image and InboundCidr are required, got cluster=%t stream=%t image=%t inboundCidr=%t",
			p.Cluster != nil, p.Stream != nil, p.Image != nil, p.InboundCidr != nil))
	}
	p.MaxTasks = cmp.Or(p.MaxTasks, DefaultMaxTasks)
	p.ScaleOutCooldown = cmp.Or(p.ScaleOutCooldown, DefaultScaleOutCooldown)
	p.ScaleInCooldown = cmp.Or(p.ScaleInCooldown, DefaultScaleInCooldown)
	https := p.CertificateArn != nil && *p.CertificateArn != ""

	this := constructs.NewConstruct(scope, id)
	s := &ProducerService{Construct: this}
	vpc := p.Cluster.Vpc()

	s.Resources = fargateservice.Add(this, &fargateservice.Props{
		Cluster:                p.Cluster,
		Image:                  p.Image,
		ContainerName:          ContainerName,
		Environment:            Environment(p.Stream.StreamName()),
		ContainerPort:          settings.DefaultPort,
		StopTimeout:            StopTimeout,
		HealthCheckGracePeriod: HealthCheckGracePeriod,
		Sizing:                 p.Sizing,
	})
	// The producer calls ListShards (shard map) and PutRecords. The AWS-managed key needs no grant: its key policy
	// allows every principal of the account to use it through Kinesis.
	p.Stream.Grant(s.TaskDefinition.TaskRole(), *jsii.Strings(StreamActions...)...)

	s.LoadBalancerGroup = awsec2.NewSecurityGroup(this, jsii.String("LoadBalancerSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              vpc,
		Description:      jsii.String("Producer load balancer: only the InboundCIDRRange address range"),
		AllowAllOutbound: jsii.Bool(false),
	})
	s.LoadBalancer = elb.NewApplicationLoadBalancer(this, jsii.String("LoadBalancer"), &elb.ApplicationLoadBalancerProps{
		Vpc:                     vpc,
		InternetFacing:          jsii.Bool(true),
		SecurityGroup:           s.LoadBalancerGroup,
		VpcSubnets:              &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
		DropInvalidHeaderFields: jsii.Bool(true),
	})

	healthCheck := &elb.HealthCheck{
		Path:                    jsii.String(ingest.PathHealthcheck),
		Interval:                awscdk.Duration_Seconds(jsii.Number(HealthCheckInterval.Seconds())),
		Timeout:                 awscdk.Duration_Seconds(jsii.Number(HealthCheckTimeout.Seconds())),
		HealthyThresholdCount:   jsii.Number(2),
		UnhealthyThresholdCount: jsii.Number(2),
		HealthyHttpCodes:        jsii.String("200"),
	}
	scheme := "http"
	if https {
		scheme = "https"
		s.Listener = s.LoadBalancer.AddListener(jsii.String("Https"), &elb.BaseApplicationListenerProps{
			Port:         jsii.Number(443),
			Protocol:     elb.ApplicationProtocol_HTTPS,
			Certificates: &[]elb.IListenerCertificate{elb.ListenerCertificate_FromArn(p.CertificateArn)},
			SslPolicy:    elb.SslPolicy_RECOMMENDED_TLS,
			Open:         jsii.Bool(false),
		})
		s.RedirectListener = s.LoadBalancer.AddListener(jsii.String("HttpRedirect"), &elb.BaseApplicationListenerProps{
			Port:     jsii.Number(80),
			Protocol: elb.ApplicationProtocol_HTTP,
			Open:     jsii.Bool(false),
			DefaultAction: elb.ListenerAction_Redirect(&elb.RedirectOptions{
				Protocol:  jsii.String("HTTPS"),
				Port:      jsii.String("443"),
				Permanent: jsii.Bool(true),
			}),
		})
		s.LoadBalancerGroup.AddIngressRule(awsec2.Peer_Ipv4(p.InboundCidr), awsec2.Port_Tcp(jsii.Number(443)),
			jsii.String("HTTPS from InboundCIDRRange"), jsii.Bool(false))
	} else {
		s.Listener = s.LoadBalancer.AddListener(jsii.String("Http"), &elb.BaseApplicationListenerProps{
			Port:     jsii.Number(80),
			Protocol: elb.ApplicationProtocol_HTTP,
			Open:     jsii.Bool(false),
		})
	}
	s.LoadBalancerGroup.AddIngressRule(awsec2.Peer_Ipv4(p.InboundCidr), awsec2.Port_Tcp(jsii.Number(80)),
		jsii.String("HTTP from InboundCIDRRange"), jsii.Bool(false))

	s.TargetGroup = s.Listener.AddTargets(jsii.String("Producer"), &elb.AddApplicationTargetsProps{
		Port:                jsii.Number(settings.DefaultPort),
		Protocol:            elb.ApplicationProtocol_HTTP,
		Targets:             &[]elb.IApplicationLoadBalancerTarget{s.Service},
		HealthCheck:         healthCheck,
		DeregistrationDelay: awscdk.Duration_Seconds(jsii.Number(DeregistrationDelay.Seconds())),
	})

	suppress(s)
	s.URL = awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(scheme + "://"), s.LoadBalancer.LoadBalancerDnsName()})
	return s
}

// suppress records why the AwsSolutions findings on these resources are accepted.
func suppress(s *ProducerService) {
	cdknag.NagSuppressions_AddResourceSuppressions(s.TaskDefinition, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-ECS2"),
		Reason: jsii.String("The producer's environment is non-secret tuning (stream name, port, buffer sizes, timeouts) " +
			"that should change only with a new task definition revision; the service has no secrets."),
	}}, jsii.Bool(false))
	cdknag.NagSuppressions_AddResourceSuppressions(s.LoadBalancer, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-ELB2"),
		Reason: jsii.String("Access logs need a region-specific S3 bucket policy, which an environment-agnostic stack cannot " +
			"write; every request is counted on the dashboard (ALB and producer EMF metrics) and logged by the producer."),
	}}, jsii.Bool(false))
	cdknag.NagSuppressions_AddResourceSuppressions(s.LoadBalancerGroup, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("CdkNagValidationFailure"),
		Reason: jsii.String("AwsSolutions-EC23 cannot evaluate the InboundCIDRRange parameter reference; the parameter's " +
			"AllowedPattern admits only one IPv4 CIDR chosen at deploy time, and the group admits nothing else."),
		AppliesTo: &[]interface{}{"AwsSolutions-EC23"},
	}}, jsii.Bool(false))
}
