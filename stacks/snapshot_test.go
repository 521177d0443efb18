package stacks_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapshotPath is the committed template that `cdk diff --template` compares the synthesized stack with. Refresh it
// with: go test ./stacks -run TestSnapshotDiff -update
var snapshotPath = filepath.Join("testdata", snapshotStack+".template.json")

// cdkDiff runs the pinned CDK CLI offline: --app names the test's cloud assembly, so nothing is synthesized again
// and, with --template, no AWS account is asked for the deployed template.
func cdkDiff(t *testing.T, template string) string {
	t.Helper()
	cli, err := filepath.Abs(filepath.Join("..", "node_modules", ".bin", "cdk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the pinned CDK CLI is missing (%v): run `make deps` (npm ci)", err)
	}
	cmd := exec.Command(cli, "diff", "--app", synthesized.outdir, "--template", template, snapshotStack)
	cmd.Env = append(os.Environ(), "CDK_DISABLE_CLI_TELEMETRY=true", "AWS_EC2_METADATA_DISABLED=true",
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cdk diff --template %s: %v\n%s", template, err, out)
	}
	return string(out)
}

func TestSnapshotDiff(t *testing.T) {
	synthesizedPath := filepath.Join(synthesized.outdir, snapshotStack+".template.json")
	if *update {
		b, err := os.ReadFile(synthesizedPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The committed snapshot: the reader sees what changed since it was taken (asset hashes change with every
	// change to the services' code, so differences are shown, not failed on).
	out := cdkDiff(t, snapshotPath)
	if !strings.Contains(out, "Stack "+snapshotStack) {
		t.Errorf("cdk diff output does not name the stack:\n%s", out)
	}
	t.Logf("cdk diff against %s:\n%s", snapshotPath, out)

	// The synthesized template against itself: no differences.
	if out := cdkDiff(t, synthesizedPath); !strings.Contains(out, "There were no differences") && !strings.Contains(out, "Number of stacks with differences: 0") {
		t.Errorf("cdk diff of the template against itself reports differences:\n%s", out)
	}

	// A snapshot without the fan-out consumer and with 4 shards: the diff shows both changes.
	var tpl map[string]any
	b, err := os.ReadFile(synthesizedPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	res := tpl["Resources"].(map[string]any)
	for id, r := range res {
		switch r.(map[string]any)["Type"] {
		case "AWS::Kinesis::StreamConsumer":
			delete(res, id)
		case "AWS::Kinesis::Stream":
			props(r.(map[string]any))["ShardCount"] = 4
		}
	}
	older := filepath.Join(t.TempDir(), "older.template.json")
	if b, err = json.Marshal(tpl); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(older, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out = cdkDiff(t, older)
	for _, want := range []string{"[+] AWS::Kinesis::StreamConsumer", "[~] AWS::Kinesis::Stream", "ShardCount", "[-] 4", "[+] 5"} {
		if !strings.Contains(out, want) {
			t.Errorf("cdk diff against an older template lacks %q:\n%s", want, out)
		}
	}
}

func TestSwitchingCapacityModeUpdatesTheStreamInPlace(t *testing.T) {
	// GIVEN the on-demand stack's template as the deployed one
	deployed := filepath.Join(synthesized.outdir, onDemandStack+".template.json")
	// WHEN the default, provisioned stack is diffed against it (cdk deploy -c capacityMode=provisioned)
	out := cdkDiff(t, deployed)
	// THEN CloudFormation updates the stream in place (the records stay): its entry, up to the next resource's,
	// is a modification that requires no replacement (other resources are named after the stack, which differs)
	lines := strings.Split(out, "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "AWS::Kinesis::Stream ") })
	if at < 0 {
		t.Fatalf("cdk diff from on-demand does not change the stream:\n%s", out)
	}
	end := at + 1
	for end < len(lines) && !strings.Contains(lines[end], "] AWS::") {
		end++
	}
	stream := strings.Join(lines[at:end], "\n")
	if !strings.Contains(lines[at], "[~]") || strings.Contains(stream, "replace") {
		t.Errorf("the stream is not updated in place:\n%s", stream)
	}
	for _, want := range []string{"StreamModeDetails", "[+] AWS::Lambda::Function ShardAutoscaler", "[+] AWS::Events::Rule ShardAutoscaler"} {
		if !strings.Contains(out, want) {
			t.Errorf("cdk diff from on-demand lacks %q:\n%s", want, out)
		}
	}
}
