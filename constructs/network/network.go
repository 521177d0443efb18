// Package network defines the VPC the services run in: two Availability Zones with public subnets (load balancer,
// NAT gateways) and private subnets with egress (Fargate tasks), VPC flow logs, gateway endpoints for DynamoDB and S3,
// optional interface endpoints for Kinesis, ECR and CloudWatch Logs, and a default security group emptied of every
// rule (the CDK's restrictDefaultSecurityGroup custom resource, whose function's log group gets a retention here).
package network

import (
	"cmp"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// DefaultNatGateways keeps one NAT gateway: the cheapest set-up with private subnets (the tasks of the second AZ
// reach the internet through the first AZ's gateway, so an AZ outage also cuts their egress).
const DefaultNatGateways = 1

// MaxAzs is the number of Availability Zones the VPC spans. In an environment-agnostic stack the zones are the first
// two of Fn::GetAZs, resolved at deploy time, so synth needs no lookup.
const MaxAzs = 2

// Props configures a Network. The zero value is the documented default of every field.
type Props struct {
	// NatGateways is the number of NAT gateways, from 1 to MaxAzs (one per AZ is highly available).
	// Default: DefaultNatGateways.
	NatGateways int
	// InterfaceEndpoints adds interface VPC endpoints for Kinesis, ECR (API and Docker), and CloudWatch Logs, so the
	// tasks' AWS traffic stays off the NAT gateway (each endpoint costs about 7.3 USD a month per AZ).
	// Default: false.
	InterfaceEndpoints bool
	// LogRetention is how long the VPC flow logs and the logs of the function that empties the default security
	// group are kept. Default: one month.
	LogRetention awslogs.RetentionDays
	// RemovalPolicy applies to both log groups. Default: awscdk.RemovalPolicy_DESTROY (the logs are diagnostics).
	RemovalPolicy awscdk.RemovalPolicy
}

// Network is the VPC and what belongs to it.
type Network struct {
	constructs.Construct
	// Vpc is the VPC; tasks go in its PRIVATE_WITH_EGRESS subnets, the load balancer in its PUBLIC ones.
	Vpc awsec2.Vpc
	// FlowLogGroup receives the VPC flow logs (all traffic).
	FlowLogGroup awslogs.LogGroup
	// InterfaceEndpoints are the interface endpoints created when Props.InterfaceEndpoints is set, by construct ID.
	InterfaceEndpoints map[string]awsec2.InterfaceVpcEndpoint
	// DefaultSecurityGroupLogGroup receives the logs of the CDK's function that empties the VPC's default security
	// group; nil when the feature flag @aws-cdk/aws-ec2:restrictDefaultSecurityGroup is off (no such function).
	DefaultSecurityGroupLogGroup awslogs.ILogGroup
}

// Construct IDs of the CDK's custom resource that empties the VPC's default security group (feature flag
// @aws-cdk/aws-ec2:restrictDefaultSecurityGroup): the custom resource under the VPC, its provider (one per stack)
// and the provider's function. IDProviderLogGroup is the log group this package adds under the provider.
const (
	idRestrictDefaultSG = "RestrictDefaultSecurityGroupCustomResource"
	idRestrictProvider  = "Custom::VpcRestrictDefaultSGCustomResourceProvider"
	idProviderHandler   = "Handler"
	IDProviderLogGroup  = "Logs"
)

// New creates the network. It panics when props are invalid (a NAT gateway count outside 1..MaxAzs).
func New(scope constructs.Construct, id *string, props *Props) *Network {
	p := Props{}
	if props != nil {
		p = *props
	}
	p.NatGateways = cmp.Or(p.NatGateways, DefaultNatGateways)
	if p.NatGateways < 1 || p.NatGateways > MaxAzs {
		panic(fmt.Sprintf("network: NatGateways is %d, want 1 to %d (the private subnets need egress)", p.NatGateways, MaxAzs))
	}
	p.LogRetention = cmp.Or(p.LogRetention, awslogs.RetentionDays_ONE_MONTH)
	p.RemovalPolicy = cmp.Or(p.RemovalPolicy, awscdk.RemovalPolicy_DESTROY)

	this := constructs.NewConstruct(scope, id)
	n := &Network{Construct: this, InterfaceEndpoints: map[string]awsec2.InterfaceVpcEndpoint{}}

	n.FlowLogGroup = awslogs.NewLogGroup(this, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
		Retention:     p.LogRetention,
		RemovalPolicy: p.RemovalPolicy,
	})
	n.Vpc = awsec2.NewVpc(this, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(MaxAzs),
		NatGateways: jsii.Number(p.NatGateways),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("Public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("Private"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(20)},
		},
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"All": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(n.FlowLogGroup, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			// The lease table's traffic (every renewal and checkpoint) stays off the NAT gateway, free of charge.
			"DynamoDB": {Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB()},
			// ECR stores image layers in S3: pulls skip the NAT gateway.
			"S3": {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
		},
	})

	if p.InterfaceEndpoints {
		services := []struct {
			id      string
			service awsec2.InterfaceVpcEndpointAwsService
		}{
			{"Kinesis", awsec2.InterfaceVpcEndpointAwsService_KINESIS_STREAMS()},
			{"EcrApi", awsec2.InterfaceVpcEndpointAwsService_ECR()},
			{"EcrDocker", awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER()},
			{"Logs", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS()},
		}
		for _, s := range services {
			ep := n.Vpc.AddInterfaceEndpoint(jsii.String(s.id), &awsec2.InterfaceVpcEndpointOptions{
				Service:           s.service,
				PrivateDnsEnabled: jsii.Bool(true),
				Subnets:           &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
			})
			cdknag.NagSuppressions_AddResourceSuppressions(ep, &[]*cdknag.NagPackSuppression{{
				Id: jsii.String("CdkNagValidationFailure"),
				Reason: jsii.String("AwsSolutions-EC23 cannot evaluate the VPC's CidrBlock attribute: the endpoint's security group " +
					"admits HTTPS from this VPC's own address range only, never from the internet."),
				AppliesTo: &[]interface{}{"AwsSolutions-EC23"},
			}}, jsii.Bool(true))
			n.InterfaceEndpoints[s.id] = ep
		}
	}
	n.DefaultSecurityGroupLogGroup = restrictDefaultSGLogGroup(n.Vpc, p.LogRetention, p.RemovalPolicy)
	return n
}

// restrictDefaultSGLogGroup gives the log group of the CDK's function that empties the default security group a
// retention. Nothing in the stack uses that group, and emptying it means a resource later placed in it by mistake
// gets no traffic (Security Hub control EC2.2); but the CDK's provider function (Node.js, its role carries the
// AWSLambdaBasicExecutionRole managed policy) would log to a group Lambda creates on first use, kept forever. This
// creates /aws/lambda/<function> first, with the retention, and makes the custom resource (the only thing that
// invokes the function) wait for it, so Lambda finds the group and never creates its own. The group sits under the
// provider, which is one per stack, and is created once. It returns nil when the feature flag is off.
func restrictDefaultSGLogGroup(vpc awsec2.Vpc, retention awslogs.RetentionDays, removal awscdk.RemovalPolicy) awslogs.ILogGroup {
	cr := vpc.Node().TryFindChild(jsii.String(idRestrictDefaultSG))
	if cr == nil {
		return nil
	}
	provider, ok := awscdk.Stack_Of(vpc).Node().TryFindChild(jsii.String(idRestrictProvider)).(constructs.Construct)
	if !ok {
		panic(fmt.Sprintf("network: the VPC has %s but the stack has no %s: the CDK renamed its provider", idRestrictDefaultSG, idRestrictProvider))
	}
	if existing, ok := provider.Node().TryFindChild(jsii.String(IDProviderLogGroup)).(awslogs.ILogGroup); ok {
		cr.Node().AddDependency(existing)
		return existing
	}
	handler, ok := provider.Node().TryFindChild(jsii.String(idProviderHandler)).(awscdk.CfnResource)
	if !ok {
		panic(fmt.Sprintf("network: %s has no %s function: the CDK changed its provider", idRestrictProvider, idProviderHandler))
	}
	group := awslogs.NewLogGroup(provider, jsii.String(IDProviderLogGroup), &awslogs.LogGroupProps{
		LogGroupName:  awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("/aws/lambda/"), handler.Ref()}),
		Retention:     retention,
		RemovalPolicy: removal,
	})
	cr.Node().AddDependency(group)
	return group
}
