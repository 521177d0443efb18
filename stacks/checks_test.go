package stacks_test

import (
	"bytes"
	"errors"
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

	"github.com/streamproc/streamproc/constructs/producerservice"
	"github.com/streamproc/streamproc/services/producer/settings"
)

func TestCdkNagAwsSolutionsHasNoUnsuppressedFinding(t *testing.T) {
	for name, stack := range map[string]awscdk.Stack{
		snapshotStack: synthesized.defaults.Stack,
		variantStack:  synthesized.variant.Stack,
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
	for _, stack := range []string{snapshotStack, variantStack} {
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
	// sets: LISTEN_HOST (a container listens on every interface) and KINESIS_ENDPOINT (an emulator's URL).
	read := []string{
		settings.EnvStreamName, settings.EnvRegion, settings.EnvPort, settings.EnvListenHost, settings.EnvKinesisEndpoint,
		settings.EnvMaxBufferedTime, settings.EnvRecordTTL, settings.EnvMaxAggregateBytes, settings.EnvMaxBufferedBytes,
		settings.EnvRateLimitPercent, settings.EnvMaxInFlight, settings.EnvDrainWindow, settings.EnvStopTimeout,
		settings.EnvLogLevel, settings.EnvMetricsNamespace, settings.EnvMetricsInterval,
	}
	localOnly := []string{settings.EnvListenHost, settings.EnvKinesisEndpoint}
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
		if _, err := settings.FromEnv(lookup); err != nil {
			t.Errorf("%s: the producer rejects its task definition's environment: %v", stack, err)
		}
	}
}

func TestIAMHasNoWildcardActionsAndScopedResources(t *testing.T) {
	// Resource "*" is allowed only for actions AWS defines without resource-level permissions.
	starOK := []string{"cloudwatch:GetMetricData", "ecr:GetAuthorizationToken"}
	for _, stack := range []string{snapshotStack, variantStack} {
		for id, pol := range resources(t, stack, "AWS::IAM::Policy") {
			for _, st := range props(pol)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				s := st.(map[string]any)
				actions := asStrings(s["Action"])
				for _, a := range actions {
					if strings.Contains(a, "*") {
						t.Errorf("%s: %s allows wildcard action %s", stack, id, a)
					}
				}
				if s["Resource"] == "*" {
					for _, a := range actions {
						if !slices.Contains(starOK, a) {
							t.Errorf("%s: %s allows %s on every resource", stack, id, a)
						}
					}
				}
			}
		}
	}
	// The producer may write to this stream only.
	_, pol := resourceWithPrefix(t, snapshotStack, "AWS::IAM::Policy", "ProducerTaskTaskRole")
	st := props(pol)["PolicyDocument"].(map[string]any)["Statement"].([]any)
	if len(st) != 1 {
		t.Fatalf("producer task policy %s, want one statement", jsonString(t, st))
	}
	s := st[0].(map[string]any)
	if got := asStrings(s["Action"]); !slices.Equal(got, []string{"kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"}) {
		t.Errorf("producer actions %v", got)
	}
	if got := jsonString(t, s["Resource"]); got != `{"Fn::GetAtt":["Stream862536A4","Arn"]}` {
		t.Errorf("producer resource %s, want the stream's ARN", got)
	}
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
