package stacks_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// resources returns the resources of type typ in the stack's written template, by logical ID.
func resources(t *testing.T, stack, typ string) map[string]map[string]any {
	t.Helper()
	tpl, ok := synthesized.raw[stack]
	if !ok {
		t.Fatalf("no template for stack %s", stack)
	}
	out := map[string]map[string]any{}
	for id, r := range tpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// only returns the single resource of type typ, failing when there is not exactly one.
func only(t *testing.T, stack, typ string) map[string]any {
	t.Helper()
	rs := resources(t, stack, typ)
	if len(rs) != 1 {
		t.Fatalf("%s: %d resources of type %s, want 1", stack, len(rs), typ)
	}
	for _, r := range rs {
		return r
	}
	return nil
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// jsonString renders v as compact JSON (for substring checks on intrinsic functions).
func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// containerEnvNames returns the sorted names of a container definition's Environment.
func containerEnvNames(t *testing.T, container map[string]any) []string {
	t.Helper()
	var names []string
	for _, e := range container["Environment"].([]any) {
		names = append(names, e.(map[string]any)["Name"].(string))
	}
	sort.Strings(names)
	return names
}

// containerEnv returns a container definition's Environment as a map (values as JSON for tokens).
func containerEnv(t *testing.T, container map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range container["Environment"].([]any) {
		m := e.(map[string]any)
		if s, ok := m["Value"].(string); ok {
			env[m["Name"].(string)] = s
		} else {
			env[m["Name"].(string)] = jsonString(t, m["Value"])
		}
	}
	return env
}

// taskContainer returns the container named name of the task definition whose logical ID starts with prefix.
func taskContainer(t *testing.T, stack, prefix, name string) map[string]any {
	t.Helper()
	for id, r := range resources(t, stack, "AWS::ECS::TaskDefinition") {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		for _, c := range props(r)["ContainerDefinitions"].([]any) {
			if cm := c.(map[string]any); cm["Name"] == name {
				return cm
			}
		}
	}
	t.Fatalf("%s: no container %q in a task definition %s*", stack, name, prefix)
	return nil
}

// resourceWithPrefix returns the one resource of type typ whose logical ID starts with prefix.
func resourceWithPrefix(t *testing.T, stack, typ, prefix string) (string, map[string]any) {
	t.Helper()
	var id string
	var res map[string]any
	for k, r := range resources(t, stack, typ) {
		if strings.HasPrefix(k, prefix) {
			if res != nil {
				t.Fatalf("%s: more than one %s with prefix %s (%s, %s)", stack, typ, prefix, id, k)
			}
			id, res = k, r
		}
	}
	if res == nil {
		t.Fatalf("%s: no %s with prefix %s", stack, typ, prefix)
	}
	return id, res
}

// objectLike is assertions.Match_ObjectLike over a Go map.
func objectLike(m map[string]any) assertions.Matcher {
	return assertions.Match_ObjectLike(&m)
}

// has asserts that tpl has a resource of type typ whose properties contain want (deep, object-like).
func has(t *testing.T, tpl assertions.Template, typ string, want map[string]any) {
	t.Helper()
	defer failOnPanic(t)
	tpl.HasResourceProperties(jsii.String(typ), objectLike(want))
}

// count asserts the number of resources of type typ.
func count(t *testing.T, tpl assertions.Template, typ string, n int) {
	t.Helper()
	defer failOnPanic(t)
	tpl.ResourceCountIs(jsii.String(typ), jsii.Number(n))
}

// failOnPanic turns an assertions failure (a panic raised through jsii) into a test error, so one failed
// assertion does not end the whole package's run.
func failOnPanic(t *testing.T) {
	t.Helper()
	if r := recover(); r != nil {
		t.Errorf("%v", r)
	}
}
