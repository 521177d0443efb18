package stacks_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/streamproc/streamproc/constructs/datalake"
	"github.com/streamproc/streamproc/constructs/producerservice"
	consumersettings "github.com/streamproc/streamproc/services/consumer/settings"
	"github.com/streamproc/streamproc/services/producer/settings"
)

func TestCdkNagAwsSolutionsHasNoUnsuppressedFinding(t *testing.T) {
	for name, stack := range map[string]awscdk.Stack{
		snapshotStack: synthesized.defaults.Stack,
		variantStack:  synthesized.variant.Stack,
		onDemandStack: synthesized.onDemand.Stack,
	} {
		t.Run(name, func(t *testing.T) {
			defer failOnPanic(t)
			// GIVEN the AwsSolutions checks applied to the app (stacks.ApplyNag, as app.go does)
			ann := assertions.Annotations_FromStack(stack)
			pattern := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*|CdkNagValidationFailure.*"))
			// THEN no error and no warning is left unsuppressed
			for kind, found := range map[string]*[]*cxapi.SynthesisMessage{
				"error":   ann.FindError(jsii.String("*"), pattern),
				"warning": ann.FindWarning(jsii.String("*"), pattern),
			} {
				for _, m := range *found {
					t.Errorf("unsuppressed cdk-nag %s at %s: %v", kind, *m.Id, m.Entry.Data)
				}
			}
		})
	}
	// AND the checks did run: the nag report lists rules it evaluated and the suppressions with their reasons.
	reports, _ := filepath.Glob(filepath.Join(synthesized.outdir, "AwsSolutions-*"+snapshotStack+"-NagReport.csv"))
	if len(reports) != 1 {
		t.Fatalf("nag reports for %s: %v, want one", snapshotStack, reports)
	}
	report, err := os.ReadFile(reports[0])
	if err != nil {
		t.Fatalf("nag report: %v", err)
	}
	if !bytes.Contains(report, []byte("AwsSolutions-IAM5")) || !bytes.Contains(report, []byte("Compliant")) || !bytes.Contains(report, []byte("Suppressed")) {
		t.Errorf("nag report lacks evaluated and suppressed rules:\n%s", report)
	}
	// AND every suppression says which rule and why, in words about this stack.
	for _, tpl := range synthesized.raw {
		for id, r := range tpl["Resources"].(map[string]any) {
			md, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := md["cdk_nag"].(map[string]any)
			rules, _ := nag["rules_to_suppress"].([]any)
			for _, rule := range rules {
				rm := rule.(map[string]any)
				reason, _ := rm["reason"].(string)
				if !strings.HasPrefix(rm["id"].(string), "AwsSolutions-") && rm["id"] != "CdkNagValidationFailure" {
					t.Errorf("%s: suppression of %v: want an AwsSolutions rule", id, rm["id"])
				}
				if len(reason) < 60 {
					t.Errorf("%s: suppression of %v has a short reason %q: say why for this stack", id, rm["id"], reason)
				}
			}
		}
	}
}

func TestCfnLintFindsNoError(t *testing.T) {
	path, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatalf("cfn-lint is not on PATH (pip install cfn-lint): %v", err)
	}
	for _, stack := range allStacks {
		t.Run(stack, func(t *testing.T) {
			// cfn-lint exits with a bit mask: 2 errors, 4 warnings, 8 informational. Warnings are reported, errors
			// fail. W3005 (DependsOn already implied by a reference) is the CDK's own redundancy.
			cmd := exec.Command(path, "--format", "parseable", "--ignore-checks", "W3005", "--",
				filepath.Join(synthesized.outdir, stack+".template.json"))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &exit) && exit.ExitCode()&2 == 0:
				t.Logf("cfn-lint warnings:\n%s", out)
			default:
				t.Errorf("cfn-lint: %v\n%s", err, out)
			}
		})
	}
}

func TestProducerEnvironmentIsExactlyWhatTheProducerReads(t *testing.T) {
	// Every variable the producer's settings read (services/producer/settings), less the two that only a local run
	// sets, LISTEN_HOST (a container listens on every interface) and KINESIS_ENDPOINT (an emulator's URL), and the
	// deprecated STOP_TIMEOUT.
	read := []string{
		settings.EnvStreamName, settings.EnvRegion, settings.EnvPort, settings.EnvListenHost, settings.EnvKinesisEndpoint,
		settings.EnvMaxBufferedTime, settings.EnvRecordTTL, settings.EnvMaxAggregateBytes, settings.EnvMaxBufferedBytes,
		settings.EnvRateLimitPercent, settings.EnvMaxInFlight, settings.EnvDrainWindow, settings.EnvShutdownTimeout,
		settings.EnvStopTimeoutDeprecated, settings.EnvLogLevel, settings.EnvMetricsNamespace, settings.EnvMetricsInterval,
	}
	localOnly := []string{settings.EnvListenHost, settings.EnvKinesisEndpoint, settings.EnvStopTimeoutDeprecated}
	var want []string
	for _, n := range read {
		if !slices.Contains(localOnly, n) {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	// The list above must itself be complete: every Env constant of the settings source is in it.
	src, err := os.ReadFile(filepath.Join("..", "services", "producer", "settings", "settings.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+Env\w+\s*=\s*"([A-Z0-9_]+)"`).FindAllSubmatch(src, -1) {
		if !slices.Contains(read, string(m[1])) {
			t.Errorf("settings.go declares %s, which this test does not know: add it to the task definition or to localOnly", m[1])
		}
	}
	for _, stack := range []string{snapshotStack, variantStack} {
		c := taskContainer(t, stack, "Producer", producerservice.ContainerName)
		if got := containerEnvNames(t, c); !slices.Equal(got, want) {
			t.Errorf("%s: producer container env %v, want exactly %v", stack, got, want)
		}
		// AND the values are ones the producer's parser accepts.
		env := containerEnv(t, c)
		lookup := func(k string) (string, bool) {
			v, ok := env[k]
			if strings.HasPrefix(v, "{") { // a CloudFormation token (stream name, region)
				v = "resolved-at-deploy"
			}
			return v, ok
		}
		if _, err := settings.Load(lookup); err != nil {
			t.Errorf("%s: the producer rejects its task definition's environment: %v", stack, err)
		}
	}
}

// allowedManagedPolicy is a managed policy a role may carry, and why.
type allowedManagedPolicy struct {
	rolePrefix, policy, reason string
}

// managedPoliciesAllowed are the only managed policies in the stack. Every other role gets inline grants scoped to
// this stack's resources.
var managedPoliciesAllowed = []allowedManagedPolicy{{
	rolePrefix: "CustomVpcRestrictDefaultSGCustomResourceProviderRole",
	policy:     ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
	reason: "the CDK's own provider of the custom resource that removes every rule from the VPC's default security " +
		"group (feature flag @aws-cdk/aws-ec2:restrictDefaultSecurityGroup); the CDK offers no way to replace this " +
		"policy, its function runs only when the stack creates, updates or deletes the VPC, its ec2 actions are " +
		"scoped to the default security group, and its log group is created by the stack with a retention",
}, {
	rolePrefix: "CustomS3AutoDeleteObjectsCustomResourceProviderRole",
	policy:     ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
	reason: "the CDK's own provider that empties the data lake's bucket when the stack deletes it (retainData=false: " +
		"a bucket that holds objects cannot be deleted); the CDK offers no way to replace this policy, and its " +
		"function runs only when the bucket is deleted",
}}

// objectPrefixGrants are the only wildcard resources allowed: S3 scopes object permissions by key prefix, so the
// consumer's sink is granted its calls on the objects under its prefix of the lake's bucket.
var objectPrefixGrants = regexp.MustCompile(`^/` + regexp.QuoteMeta(consumersettings.DefaultS3Prefix) + `/\*$`)

// iamStatement is one Allow statement of a role, wherever it is written in the template.
type iamStatement struct {
	role, source string
	actions      []string
	resource     any // a string, an intrinsic function, or a list of those
}

// roleStatements returns every statement granted to every role of the stack: AWS::IAM::Policy and
// AWS::IAM::ManagedPolicy resources (by the roles they attach to) and the roles' inline Policies, by role logical ID.
func roleStatements(t *testing.T, stack string) map[string][]iamStatement {
	t.Helper()
	out := map[string][]iamStatement{}
	for id := range resources(t, stack, "AWS::IAM::Role") {
		out[id] = nil
	}
	add := func(role, source string, doc any) {
		for _, st := range doc.(map[string]any)["Statement"].([]any) {
			s := st.(map[string]any)
			if s["Effect"] != "Allow" {
				continue
			}
			if _, ok := s["NotAction"]; ok {
				t.Errorf("%s: %s on %s uses NotAction", stack, source, role)
			}
			if _, ok := s["NotResource"]; ok {
				t.Errorf("%s: %s on %s uses NotResource", stack, source, role)
			}
			out[role] = append(out[role], iamStatement{role: role, source: source, actions: asStrings(s["Action"]), resource: s["Resource"]})
		}
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for id, pol := range resources(t, stack, typ) {
			roles, _ := props(pol)["Roles"].([]any)
			if len(roles) == 0 {
				t.Errorf("%s: %s %s attaches to no role (users or groups?)", stack, typ, id)
			}
			for _, r := range roles {
				ref, _ := r.(map[string]any)["Ref"].(string)
				if _, ok := out[ref]; !ok {
					t.Errorf("%s: %s %s attaches to %s, not a role of this stack", stack, typ, id, jsonString(t, r))
					continue
				}
				add(ref, id, props(pol)["PolicyDocument"])
			}
		}
	}
	for id, role := range resources(t, stack, "AWS::IAM::Role") {
		inline, _ := props(role)["Policies"].([]any)
		for _, p := range inline {
			pm := p.(map[string]any)
			add(id, fmt.Sprintf("%s inline policy %v", id, pm["PolicyName"]), pm["PolicyDocument"])
		}
	}
	return out
}

// resourceList reads an IAM Resource (one value or a list) as a list.
func resourceList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// literalStrings returns every literal string inside v (a Resource with its intrinsic functions), less the names
// of the functions, pseudo parameters and resources they refer to.
func literalStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, literalStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			switch k {
			case "Ref", "Fn::GetAtt":
				continue // names of resources, attributes and pseudo parameters
			}
			out = append(out, literalStrings(e)...)
		}
		return out
	}
	return nil
}

func TestIAMHasNoWildcardActionsAndScopedResources(t *testing.T) {
	// Resource "*" is allowed only for actions AWS defines without resource-level permissions.
	starOK := []string{"cloudwatch:GetMetricData", "ecr:GetAuthorizationToken"}
	for _, stack := range allStacks {
		t.Run(stack, func(t *testing.T) {
			statements := roleStatements(t, stack)
			if len(statements) < 6 {
				t.Errorf("%d roles, want at least the flow log, 2 task, 2 execution and provider roles", len(statements))
			}
			for role, sts := range statements {
				for _, s := range sts {
					for _, a := range s.actions {
						if strings.Contains(a, "*") {
							t.Errorf("%s: %s allows the wildcard action %s", role, s.source, a)
						}
					}
					for _, r := range resourceList(s.resource) {
						if r == "*" {
							for _, a := range s.actions {
								if !slices.Contains(starOK, a) {
									t.Errorf("%s: %s allows %s on every resource", role, s.source, a)
								}
							}
							continue
						}
						for _, lit := range literalStrings(r) {
							if strings.Contains(lit, "*") && !(objectPrefixGrants.MatchString(lit) && onlyObjectActions(s.actions)) {
								t.Errorf("%s: %s allows %v on the wildcard resource %s", role, s.source, s.actions, jsonString(t, r))
							}
						}
					}
				}
			}
			// Managed policies: only those allowed above, each with its reason.
			for id, role := range resources(t, stack, "AWS::IAM::Role") {
				arns, _ := props(role)["ManagedPolicyArns"].([]any)
				for _, arn := range arns {
					got := jsonString(t, arn)
					allowed := slices.ContainsFunc(managedPoliciesAllowed, func(m allowedManagedPolicy) bool {
						return strings.HasPrefix(id, m.rolePrefix) && strings.Contains(got, m.policy)
					})
					if !allowed {
						t.Errorf("%s carries the managed policy %s: grant scoped actions instead, or allow it with a reason", id, got)
					}
				}
			}
		})
	}
	for _, m := range managedPoliciesAllowed {
		if len(m.reason) < 60 {
			t.Errorf("managed policy %s on %s: say why in words about this stack", m.policy, m.rolePrefix)
		}
	}
	// The CDK provider's function logs to a group the stack creates, named as Lambda names it, with the retention.
	fnID, _ := resourceWithPrefix(t, snapshotStack, "AWS::Lambda::Function", "CustomVpcRestrictDefaultSGCustomResourceProviderHandler")
	lgID, lg := resourceWithPrefix(t, snapshotStack, "AWS::Logs::LogGroup", "CustomVpcRestrictDefaultSGCustomResourceProviderLogs")
	if got, want := jsonString(t, props(lg)["LogGroupName"]), `{"Fn::Join":["",["/aws/lambda/",{"Ref":"`+fnID+`"}]]}`; got != want {
		t.Errorf("provider log group name %s, want %s", got, want)
	}
	_, cr := resourceWithPrefix(t, snapshotStack, "Custom::VpcRestrictDefaultSG", "NetworkVpcRestrictDefaultSecurityGroupCustomResource")
	if deps := asStrings(cr["DependsOn"]); !slices.Contains(deps, lgID) {
		t.Errorf("the default security group's custom resource depends on %v, want %s: the function would log before its group exists", deps, lgID)
	}
}

// onlyObjectActions tells whether actions are all the S3 sink's object calls.
func onlyObjectActions(actions []string) bool {
	for _, a := range actions {
		if !slices.Contains(datalake.ObjectActions, a) {
			return false
		}
	}
	return true
}

// asStrings reads an IAM Action (a string or a list of strings).
func asStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			out[i], _ = e.(string)
		}
		return out
	}
	return nil
}
