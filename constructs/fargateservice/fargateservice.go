// Package fargateservice adds the shape the producer and consumer services share to a service's construct: a log
// group, an ARM64 Fargate task definition with one essential, non-root container on a read-only root file system
// logging to that group, a Fargate service in the private subnets with a deployment circuit breaker that rolls back,
// and CPU target tracking between a minimum and a maximum task count. What differs between the services (their
// environment, ports, permissions, load balancer, tables) stays in their own packages.
package fargateservice

import (
	"cmp"
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Defaults of Props and the fixed shape of the services.
const (
	DefaultCPU              = 512
	DefaultMemoryMiB        = 1024
	DefaultMinTasks         = 1
	DefaultTargetCPUPercent = 65
	// ContainerUser is the distroless "nonroot" user the images run as (UID:GID), stated again in the task
	// definition so that ECS refuses to start the container as root even if the image changed.
	ContainerUser = "65532:65532"
)

// Construct IDs of what Add creates under the service's construct. They are a contract: the resources' logical
// IDs derive from them, and renaming one replaces the resource on the next deployment.
const (
	IDLogGroup       = "Logs"
	IDTaskDefinition = "Task"
	IDService        = "Service"
	IDCPUScaling     = "Cpu"
)

// Sizing is what a deployment chooses for a service: the task's size, the bounds and target of its CPU scaling, and
// how long its logs are kept. The zero value of every field means its documented default.
type Sizing struct {
	// CPU is the task's CPU units (256, 512, 1024, ...). Default: DefaultCPU.
	CPU int
	// MemoryMiB is the task's memory, valid for CPU on Fargate. Default: DefaultMemoryMiB.
	MemoryMiB int
	// MinTasks is the fewest tasks the CPU target tracking keeps. Default: DefaultMinTasks.
	MinTasks int
	// MaxTasks is the most tasks the CPU target tracking starts. Default: the service's own DefaultMaxTasks
	// (Add, which knows no service, requires it).
	MaxTasks int
	// TargetCPUPercent is the average CPU utilisation the service is scaled to, 10 to 90. Default:
	// DefaultTargetCPUPercent.
	TargetCPUPercent int
	// ScaleOutCooldown and ScaleInCooldown space the CPU target tracking's steps out and in (whole seconds, up to
	// an hour). Default: the service's own defaults (Add, which knows no service, requires them).
	ScaleOutCooldown, ScaleInCooldown time.Duration
	// LogRetention is how long the container logs are kept. Default: one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy applies to the log group. Default: awscdk.RemovalPolicy_DESTROY.
	LogRemovalPolicy awscdk.RemovalPolicy
}

// Props configures Add. Cluster, Image, ContainerName, MaxTasks and the cooldowns are required.
type Props struct {
	// Cluster is the ECS cluster (and through it the VPC) the service runs in. Required.
	Cluster awsecs.ICluster
	// Image is the container image. Required.
	Image awsecs.ContainerImage
	// ContainerName names the container in the task definition and prefixes its log streams. Required.
	ContainerName string
	// Environment is the container's environment. Default: none.
	Environment map[string]*string
	// ContainerPort is the TCP port the container listens on. Default: 0, no port mapping.
	ContainerPort int
	// StopTimeout is how long ECS waits after SIGTERM before SIGKILL. Default: ECS's default, 30 seconds.
	StopTimeout time.Duration
	// HealthCheckGracePeriod is how long new tasks may fail load balancer health checks before ECS acts on them.
	// Default: none, for a service without a load balancer.
	HealthCheckGracePeriod time.Duration
	// Sizing sizes and scales the service; MaxTasks is required.
	Sizing
}

// Resources are what Add creates.
type Resources struct {
	// LogGroup (IDLogGroup) receives the container's logs through the non-blocking awslogs driver.
	LogGroup awslogs.LogGroup
	// TaskDefinition (IDTaskDefinition) is the arm64 Linux task definition.
	TaskDefinition awsecs.FargateTaskDefinition
	// Container is the task's one essential container, named Props.ContainerName.
	Container awsecs.ContainerDefinition
	// Service (IDService) is the Fargate service in the private subnets.
	Service awsecs.FargateService
	// Scaling is the service's task count between MinTasks and MaxTasks, scaled on CPU (IDCPUScaling).
	Scaling awsecs.ScalableTaskCount
}

// Add creates the log group, task definition, container, Fargate service and its CPU scaling directly under scope,
// with the construct IDs above, and suppresses the cdk-nag finding on the execution role that every ECR image pull
// raises. It adds to scope rather than creating a construct of its own so that the resources keep the paths (and
// logical IDs) the services deployed them at. It panics when props are invalid, naming the container.
func Add(scope constructs.Construct, props *Props) Resources {
	if props == nil || props.Cluster == nil || props.Image == nil || props.ContainerName == "" {
		panic("fargateservice: Cluster, Image and ContainerName are required")
	}
	p := *props
	p.CPU = cmp.Or(p.CPU, DefaultCPU)
	p.MemoryMiB = cmp.Or(p.MemoryMiB, DefaultMemoryMiB)
	p.MinTasks = cmp.Or(p.MinTasks, DefaultMinTasks)
	p.TargetCPUPercent = cmp.Or(p.TargetCPUPercent, DefaultTargetCPUPercent)
	p.LogRetention = cmp.Or(p.LogRetention, awslogs.RetentionDays_ONE_MONTH)
	p.LogRemovalPolicy = cmp.Or(p.LogRemovalPolicy, awscdk.RemovalPolicy_DESTROY)
	if p.MinTasks < 1 || p.MaxTasks < p.MinTasks {
		panic(fmt.Sprintf("%s service: MinTasks=%d MaxTasks=%d, want 1 <= MinTasks <= MaxTasks", p.ContainerName, p.MinTasks, p.MaxTasks))
	}
	for _, c := range []time.Duration{p.ScaleOutCooldown, p.ScaleInCooldown} {
		if c <= 0 || c > time.Hour || c%time.Second != 0 {
			panic(fmt.Sprintf("%s service: ScaleOutCooldown=%v ScaleInCooldown=%v, want whole seconds from 1s to 1h", p.ContainerName, p.ScaleOutCooldown, p.ScaleInCooldown))
		}
	}
	if p.TargetCPUPercent < 10 || p.TargetCPUPercent > 90 {
		panic(fmt.Sprintf("%s service: TargetCPUPercent is %d, want 10 to 90", p.ContainerName, p.TargetCPUPercent))
	}

	var r Resources
	r.LogGroup = awslogs.NewLogGroup(scope, jsii.String(IDLogGroup), &awslogs.LogGroupProps{
		Retention:     p.LogRetention,
		RemovalPolicy: p.LogRemovalPolicy,
	})
	r.TaskDefinition = awsecs.NewFargateTaskDefinition(scope, jsii.String(IDTaskDefinition), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(p.CPU),
		MemoryLimitMiB: jsii.Number(p.MemoryMiB),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
	container := &awsecs.ContainerDefinitionOptions{
		Image:                  p.Image,
		Essential:              jsii.Bool(true),
		User:                   jsii.String(ContainerUser),
		ReadonlyRootFilesystem: jsii.Bool(true),
		StopTimeout:            seconds(p.StopTimeout),
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			LogGroup:     r.LogGroup,
			StreamPrefix: jsii.String(p.ContainerName),
			Mode:         awsecs.AwsLogDriverMode_NON_BLOCKING,
		}),
	}
	if p.Environment != nil {
		env := p.Environment
		container.Environment = &env
	}
	if p.ContainerPort != 0 {
		container.PortMappings = &[]*awsecs.PortMapping{{ContainerPort: jsii.Number(p.ContainerPort), Protocol: awsecs.Protocol_TCP}}
	}
	r.Container = r.TaskDefinition.AddContainer(jsii.String(p.ContainerName), container)

	r.Service = awsecs.NewFargateService(scope, jsii.String(IDService), &awsecs.FargateServiceProps{
		Cluster:                p.Cluster,
		TaskDefinition:         r.TaskDefinition,
		MinHealthyPercent:      jsii.Number(100),
		MaxHealthyPercent:      jsii.Number(200),
		AssignPublicIp:         jsii.Bool(false),
		VpcSubnets:             &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		CircuitBreaker:         &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		HealthCheckGracePeriod: seconds(p.HealthCheckGracePeriod),
	})
	r.Scaling = r.Service.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{
		MinCapacity: jsii.Number(p.MinTasks),
		MaxCapacity: jsii.Number(p.MaxTasks),
	})
	r.Scaling.ScaleOnCpuUtilization(jsii.String(IDCPUScaling), &awsecs.CpuUtilizationScalingProps{
		TargetUtilizationPercent: jsii.Number(p.TargetCPUPercent),
		ScaleOutCooldown:         seconds(p.ScaleOutCooldown),
		ScaleInCooldown:          seconds(p.ScaleInCooldown),
	})

	cdknag.NagSuppressions_AddResourceSuppressions(r.TaskDefinition.ObtainExecutionRole(), &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The execution role's ecr:GetAuthorizationToken supports no resource-level permissions (AWS requires " +
			"Resource *); image pulls themselves are scoped to the asset repository."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return r
}

// seconds is d as a CDK duration in whole seconds, or nil (the service's default) for zero.
func seconds(d time.Duration) awscdk.Duration {
	if d == 0 {
		return nil
	}
	return awscdk.Duration_Seconds(jsii.Number(d.Seconds()))
}
