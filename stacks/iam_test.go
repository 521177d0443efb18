package stacks_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/streamproc/streamproc/constructs/consumerservice"
	"github.com/streamproc/streamproc/lambda/autoscaler/scaler"
	"github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/kcl"
	"github.com/streamproc/streamproc/services/kpl"
	"github.com/streamproc/streamproc/services/s3sink"
)

// sdkActions returns the IAM actions of the SDK interface T's methods ("kinesis:ListShards" for ListShards): the
// services declare the exact part of each SDK client they call, so these are the calls their code can make.
func sdkActions[T any](service string, except ...string) []string {
	typ := reflect.TypeFor[T]()
	var out []string
	for i := range typ.NumMethod() {
		if name := typ.Method(i).Name; !slices.Contains(except, name) {
			out = append(out, service+":"+name)
		}
	}
	slices.Sort(out)
	return out
}

// s3Actions maps S3 API calls to the IAM actions that authorize them, where the names differ.
func s3Actions(calls []string) []string {
	out := make([]string, 0, len(calls))
	for _, c := range calls {
		if c == "s3:HeadObject" {
			c = "s3:GetObject"
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// kinesisCallsOf returns the Kinesis client methods (calls on the variable kc) in a Go file, by enclosing function.
func kinesisCallsOf(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string][]string{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "kc" && !slices.Contains(calls[fn.Name.Name], sel.Sel.Name) {
					calls[fn.Name.Name] = append(calls[fn.Name.Name], sel.Sel.Name)
				}
			}
			return true
		})
	}
	return calls
}

// grantsByResource merges a role's statements into its sorted actions by resource (as JSON).
func grantsByResource(t *testing.T, sts []iamStatement) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, s := range sts {
		for _, r := range resourceList(s.resource) {
			key := jsonString(t, r)
			for _, a := range s.actions {
				if !slices.Contains(out[key], a) {
					out[key] = append(out[key], a)
				}
			}
			slices.Sort(out[key])
		}
	}
	return out
}

func TestEachRoleIsGrantedExactlyWhatItsCodeCalls(t *testing.T) {
	// GIVEN the calls each service's code can make, from the SDK interfaces it declares, less the calls the deployed
	// configuration never makes:
	// - the consumer worker (services/kcl): DynamoDBAPI's DescribeTable and CreateTable run only in
	//   LeaseTable.CreateIfMissing, with CREATE_LEASE_TABLE=true; the task sets false (the stack owns the table).
	//   SubscribeToShard acts on the registered consumer, the other KinesisAPI calls on the stream.
	// - the consumer's main (services/consumer): its own Kinesis calls run in ensureStreamConsumer only, when
	//   CONSUMER_ARN is empty; the task sets it to the registered consumer's ARN.
	main := kinesisCallsOf(t, filepath.Join("..", "services", "consumer", "main.go"))
	if len(main["ensureStreamConsumer"]) == 0 {
		t.Errorf("services/consumer/main.go: no Kinesis call found in ensureStreamConsumer (%v): update this test", main)
	}
	var consumerMainCalls []string
	for fn, calls := range main {
		if fn != "ensureStreamConsumer" {
			consumerMainCalls = append(consumerMainCalls, calls...)
		}
	}
	consumerStream := sdkActions[kcl.KinesisAPI]("kinesis", "SubscribeToShard")
	for _, c := range consumerMainCalls {
		consumerStream = append(consumerStream, "kinesis:"+c)
	}
	slices.Sort(consumerStream)
	consumerStream = slices.Compact(consumerStream)

	for _, stack := range allStacks {
		t.Run(stack, func(t *testing.T) {
			id := func(typ, prefix string) string {
				id, _ := resourceWithPrefix(t, stack, typ, prefix)
				return id
			}
			arn := func(typ, prefix, attr string) string {
				return `{"Fn::GetAtt":["` + id(typ, prefix) + `","` + attr + `"]}`
			}
			streamARN := arn("AWS::Kinesis::Stream", "Stream", "Arn")
			env := containerEnv(t, taskContainer(t, stack, "Consumer", consumerservice.ContainerName))
			if env[settings.EnvCreateLeaseTable] != "false" || !strings.Contains(env[settings.EnvConsumerARN], "StreamFanOutConsumer") {
				t.Fatalf("consumer env %v: the exclusions above assume CREATE_LEASE_TABLE=false and CONSUMER_ARN set", env)
			}
			consumerGrants := map[string][]string{
				streamARN: consumerStream,
				arn("AWS::Kinesis::StreamConsumer", "StreamFanOutConsumer", "ConsumerARN"): {"kinesis:SubscribeToShard"},
				arn("AWS::DynamoDB::Table", "ConsumerLeaseTable", "Arn"):                   sdkActions[kcl.DynamoDBAPI]("dynamodb", "CreateTable", "DescribeTable", "Query"),
				// Query reads the owner index only.
				`{"Fn::Join":["",[` + arn("AWS::DynamoDB::Table", "ConsumerLeaseTable", "Arn") + `,"/index/` + kcl.LeaseOwnerIndexName + `"]]}`: {"dynamodb:Query"},
			}
			// - the S3 sink (services/s3sink, consumerSink=s3 with the Go consumer: the stacks with a lake): its
			//   S3API's calls on the objects under its prefix; IAM authorizes HeadObject as s3:GetObject.
			if len(resources(t, stack, "AWS::S3::Bucket")) > 0 {
				objects := `{"Fn::Join":["",[` + arn("AWS::S3::Bucket", "LakeBucket", "Arn") + `,"/` + settings.DefaultS3Prefix + `/*"]]}`
				consumerGrants[objects] = s3Actions(sdkActions[s3sink.S3API]("s3"))
			}
			want := map[string]map[string][]string{
				"ProducerTaskTaskRole": {streamARN: sdkActions[kpl.KinesisAPI]("kinesis")},
				"ConsumerTaskTaskRole": consumerGrants,
			}
			// An on-demand stack has no autoscaler (TestCapacityModes checks that).
			if stack != onDemandStack {
				want["ShardAutoscalerRole"] = map[string][]string{
					streamARN: sdkActions[scaler.KinesisAPI]("kinesis"),
					// GetMetricData has no resource-level permissions.
					`"*"`: sdkActions[scaler.CloudWatchAPI]("cloudwatch"),
					// Lambda writes the function's logs with the function's role.
					arn("AWS::Logs::LogGroup", "ShardAutoscalerLogs", "Arn"): {"logs:CreateLogStream", "logs:PutLogEvents"},
				}
			}
			statements := roleStatements(t, stack)
			for prefix, wantGrants := range want {
				var role string
				for r := range statements {
					if strings.HasPrefix(r, prefix) {
						role = r
					}
				}
				if role == "" {
					t.Errorf("no role %s*", prefix)
					continue
				}
				// THEN the role is granted exactly those calls, each on its own resource
				got := grantsByResource(t, statements[role])
				if !reflect.DeepEqual(got, wantGrants) {
					t.Errorf("%s grants\n  %v\nwant exactly what its code calls\n  %v", role, got, wantGrants)
				}
			}
		})
	}
}
