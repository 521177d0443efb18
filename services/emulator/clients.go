package emulator

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// Region is the region the emulators are addressed in. kinesis-local builds ARNs with it and account id
// 000000000000.
const Region = "us-east-1"

// AWSConfig returns an SDK configuration for the emulators: LocalConfig.
func (e *Emulators) AWSConfig() aws.Config { return LocalConfig() }

// LocalConfig returns an SDK configuration for emulators: static dummy credentials and Region. It loads nothing
// from the environment, so no AWS profile, account or CA bundle setting affects a local run. Tools pointed at an
// emulator's URL use it with the New...Client functions.
func LocalConfig() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	}
}

// KinesisClient returns a Kinesis client for kinesis-local. optFns run after the endpoint is set, so a test
// can put a fault-injecting transport in front of the emulator through o.HTTPClient.
func (e *Emulators) KinesisClient(optFns ...func(*kinesis.Options)) *kinesis.Client {
	endpoint := e.KinesisEndpoint
	return kinesis.NewFromConfig(e.AWSConfig(), append([]func(*kinesis.Options){func(o *kinesis.Options) {
		o.BaseEndpoint = &endpoint
	}}, optFns...)...)
}

// DynamoDBClient returns a DynamoDB client for dynalite.
func (e *Emulators) DynamoDBClient(optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	endpoint := e.DynamoDBEndpoint
	return dynamodb.NewFromConfig(e.AWSConfig(), append([]func(*dynamodb.Options){func(o *dynamodb.Options) {
		o.BaseEndpoint = &endpoint
	}}, optFns...)...)
}

// CloudWatchClient returns a CloudWatch client for moto_server. The client speaks the query protocol, because
// moto does not understand the SDK's default (Smithy RPC v2 CBOR).
func (e *Emulators) CloudWatchClient(optFns ...func(*cloudwatch.Options)) *cloudwatch.Client {
	return NewCloudWatchClient(e.AWSConfig(), e.CloudWatchEndpoint, optFns...)
}

// NewCloudWatchClient returns a CloudWatch client for a CloudWatch emulator at endpoint, speaking the query
// protocol the emulator understands. Services use it when they are pointed at a local endpoint.
func NewCloudWatchClient(cfg aws.Config, endpoint string, optFns ...func(*cloudwatch.Options)) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, append([]func(*cloudwatch.Options){func(o *cloudwatch.Options) {
		o.BaseEndpoint = &endpoint
		o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
	}}, optFns...)...)
}

// S3Client returns an S3 client for moto_server, with path-style addressing (moto serves no bucket host names).
// optFns run after the endpoint is set, so a test can put a fault-injecting transport in front of it.
func (e *Emulators) S3Client(optFns ...func(*s3.Options)) *s3.Client {
	return NewS3Client(e.AWSConfig(), e.S3Endpoint, optFns...)
}

// NewS3Client returns an S3 client for an S3 emulator at endpoint, with path-style addressing. Services use it
// when they are pointed at a local endpoint.
func NewS3Client(cfg aws.Config, endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.BaseEndpoint = &endpoint
		o.UsePathStyle = true
	}}, optFns...)...)
}
