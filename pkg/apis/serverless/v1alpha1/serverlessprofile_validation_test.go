package v1alpha1

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

func profile(sels ...Selector) *ServerlessProfile {
	return &ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: ServerlessProfileSpec{Selectors: sels}}
}

func TestValidate(t *testing.T) {
	six := make([]Selector, 6)
	for i := range six {
		six[i] = Selector{Namespace: fmt.Sprintf("ns%d", i)}
	}
	sixLabels := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"}
	long := &ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 64)}, Spec: ServerlessProfileSpec{Selectors: []Selector{{Namespace: "x"}}}}
	tests := []struct {
		name string
		p    *ServerlessProfile
		want string // "" is valid
	}{
		{"namespace only", profile(Selector{Namespace: "dev"}), ""},
		{"wildcards everywhere", profile(Selector{Namespace: "team-*", Labels: map[string]string{"example.com/*": "web-?", "*": "*"}}), ""},
		{"five selectors of five labels", profile(six[0], six[1], six[2], six[3], Selector{Namespace: "x", Labels: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": ""}}), ""},
		{"no selector", profile(), "missing field(s): spec.selectors"},
		{"a sixth selector", profile(six...), "a profile has at most 5 selectors, this one has 6: spec.selectors[5]"},
		{"no namespace", profile(Selector{Labels: map[string]string{"a": "b"}}), "missing field(s): spec.selectors[0].namespace"},
		{"a bad namespace", profile(Selector{Namespace: "Dev_1"}), "invalid value: Dev_1: spec.selectors[0].namespace"},
		{"a system namespace", profile(Selector{Namespace: "dev"}, Selector{Namespace: "kube-system"}), "invalid value: kube-system: spec.selectors[1].namespace"},
		{"a regexp is no pattern", profile(Selector{Namespace: "dev.+"}), "invalid value: dev.+: spec.selectors[0].namespace"},
		{"six labels", profile(Selector{Namespace: "x", Labels: sixLabels}), "a selector has at most 5 labels, this one has 6: spec.selectors[0].labels"},
		{"a bad key", profile(Selector{Namespace: "x", Labels: map[string]string{"a b": "c"}}), `invalid key name "a b": spec.selectors[0].labels`},
		{"a bad value", profile(Selector{Namespace: "x", Labels: map[string]string{"a": "b c"}}), "invalid value: b c: spec.selectors[0].labels[a]"},
		{"a name too long for a label", long, "metadata.name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate(apis.WithinCreate(context.Background()))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	old := profile(Selector{Namespace: "dev"})
	same := old.DeepCopy()
	same.Labels = map[string]string{"team": "a"}
	same.Finalizers = []string{"x"}
	if err := same.Validate(apis.WithinUpdate(context.Background(), old)); err != nil {
		t.Errorf("a metadata change: %v", err)
	}
	changed := profile(Selector{Namespace: "dev", Labels: map[string]string{"app": "web"}})
	err := changed.Validate(apis.WithinUpdate(context.Background(), old))
	if err == nil || !strings.Contains(err.Error(), "is immutable: create a new ServerlessProfile") || !strings.Contains(err.Error(), ": spec") {
		t.Errorf("a spec change: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	p := profile(Selector{Namespace: "dev"})
	p.Status.InitializeConditions()
	if p.Status.Phase != PhaseCreating || !p.Selects() {
		t.Fatalf("new profile: phase %q, selects %v", p.Status.Phase, p.Selects())
	}
	invalid := profile(Selector{Namespace: "kube-system"})
	if invalid.Selects() {
		t.Error("an invalid profile selects before the controller marked it")
	}
	invalid.Spec.Selectors[0].Namespace = "dev"
	invalid.Status.MarkCreateFailed("x")
	if invalid.Selects() {
		t.Error("a CreateFailed profile selects")
	}
	p.Status.MarkActive()
	if p.Status.Phase != PhaseActive || !p.Selects() || !p.Status.GetCondition(apis.ConditionReady).IsTrue() {
		t.Fatalf("active profile: %+v", p.Status)
	}
	p.DeletionTimestamp = &metav1.Time{}
	if p.Selects() {
		t.Error("a profile being deleted selects")
	}
	p.Status.MarkDeleting("stopping 2 pods")
	if c := p.Status.GetCondition(apis.ConditionReady); p.Status.Phase != PhaseDeleting || !c.IsFalse() || c.Message != "stopping 2 pods" {
		t.Errorf("deleting: %+v", p.Status)
	}
}

func TestSummary(t *testing.T) {
	p := profile(Selector{Namespace: "shop", Labels: map[string]string{"tier": "front", "app": "web*"}}, Selector{Namespace: "team-?"})
	if got, want := p.Spec.Summary(), "shop app=web*,tier=front; team-?"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}
