// Command streamproc is the CDK app (cdk.json runs it): it reads the deployment's choices from the context
// (cdk.json, -c key=value), builds the stack, checks it with cdk-nag's AwsSolutions rules and synthesizes it to
// cdk.out. It makes no AWS call: the stack is environment-agnostic.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamproc/streamproc/stacks"
)

// ContextStackName is the context key naming the stack. Default: DefaultStackName.
const ContextStackName = "stackName"

// DefaultStackName is the stack's name (and the prefix of its resources' names) by default.
const DefaultStackName = "StreamProc"

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := stacks.ConfigFromContext(app.Node())
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamproc:", err)
		os.Exit(2)
	}
	name := DefaultStackName
	key := ContextStackName
	if v, ok := app.Node().TryGetContext(&key).(string); ok && v != "" {
		name = v
	}
	stacks.NewStreamProcStack(app, name, &stacks.StreamProcStackProps{Config: cfg})
	stacks.ApplyNag(app)
	app.Synth(nil)
}
