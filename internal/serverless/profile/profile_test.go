package profile

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"dev", "dev", true},
		{"dev", "devx", false},
		{"dev-*", "dev-team", true},
		{"dev-*", "dev-", true},
		{"dev-*", "prod-team", false},
		{"*-prod", "team-prod", true},
		{"*-prod", "team-prod2", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "abcbc", true},
		{"te?m", "team", true},
		{"te?m", "tem", false},
		{"te?m", "teaam", false},
		{"??", "ab", true},
		{"?*", "", false},
		{"*?", "x", true},
		{"a.b", "axb", false},
		{"[a]", "a", false},
		{"[a]", "[a]", true},
		{"**a", "bba", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false},
	} {
		if got := Glob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func active(name string, sels ...sv1alpha1.Selector) *sv1alpha1.ServerlessProfile {
	p := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: sels}}
	p.Status.MarkActive()
	return p
}

func TestMatchesSelector(t *testing.T) {
	for _, tc := range []struct {
		name string
		sel  sv1alpha1.Selector
		pod  Pod
		want bool
	}{
		{"namespace only", sv1alpha1.Selector{Namespace: "dev"}, Pod{Namespace: "dev", Labels: map[string]string{"a": "b"}}, true},
		{"other namespace", sv1alpha1.Selector{Namespace: "dev"}, Pod{Namespace: "prod"}, false},
		{"label present", sv1alpha1.Selector{Namespace: "dev", Labels: map[string]string{"app": "web"}}, Pod{Namespace: "dev", Labels: map[string]string{"app": "web", "x": "y"}}, true},
		{"label value differs", sv1alpha1.Selector{Namespace: "dev", Labels: map[string]string{"app": "web"}}, Pod{Namespace: "dev", Labels: map[string]string{"app": "api"}}, false},
		{"label missing", sv1alpha1.Selector{Namespace: "dev", Labels: map[string]string{"app": "web"}}, Pod{Namespace: "dev"}, false},
		{"every label needed", sv1alpha1.Selector{Namespace: "dev", Labels: map[string]string{"app": "web", "tier": "front"}}, Pod{Namespace: "dev", Labels: map[string]string{"app": "web"}}, false},
		{"wildcard namespace", sv1alpha1.Selector{Namespace: "team-*"}, Pod{Namespace: "team-a"}, true},
		{"wildcard value", sv1alpha1.Selector{Namespace: "*", Labels: map[string]string{"app": "web-?"}}, Pod{Namespace: "x", Labels: map[string]string{"app": "web-1"}}, true},
		{"wildcard value, one too many", sv1alpha1.Selector{Namespace: "*", Labels: map[string]string{"app": "web-?"}}, Pod{Namespace: "x", Labels: map[string]string{"app": "web-12"}}, false},
		{"wildcard key", sv1alpha1.Selector{Namespace: "*", Labels: map[string]string{"example.com/*": "on"}}, Pod{Namespace: "x", Labels: map[string]string{"example.com/serverless": "on"}}, true},
		{"wildcard key, value differs", sv1alpha1.Selector{Namespace: "*", Labels: map[string]string{"example.com/*": "on"}}, Pod{Namespace: "x", Labels: map[string]string{"example.com/serverless": "off"}}, false},
		{"key and value from one label", sv1alpha1.Selector{Namespace: "*", Labels: map[string]string{"a*": "1"}}, Pod{Namespace: "x", Labels: map[string]string{"ab": "2", "ac": "1"}}, true},
	} {
		if got := MatchesSelector(&tc.sel, tc.pod); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	dev := active("dev", sv1alpha1.Selector{Namespace: "dev"})
	web := active("a-web", sv1alpha1.Selector{Namespace: "qa"}, sv1alpha1.Selector{Namespace: "d*", Labels: map[string]string{"app": "web"}})
	failed := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "0-failed"}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: []sv1alpha1.Selector{{Namespace: "*"}}}}
	failed.Status.MarkCreateFailed("invalid")
	invalid := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "0-invalid"}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: []sv1alpha1.Selector{{Namespace: "*", Labels: map[string]string{"a b": "c"}}}}}
	deleting := active("0-deleting", sv1alpha1.Selector{Namespace: "*"})
	deleting.DeletionTimestamp = &metav1.Time{}
	all := []*sv1alpha1.ServerlessProfile{dev, failed, invalid, deleting, web}

	for _, tc := range []struct {
		name    string
		pod     Pod
		want    string
		wantErr string
	}{
		{"no profile matches", Pod{Namespace: "prod"}, "", ""},
		{"one matches", Pod{Namespace: "dev"}, "dev", ""},
		{"first by name wins", Pod{Namespace: "dev", Labels: map[string]string{"app": "web"}}, "a-web", ""},
		{"any selector", Pod{Namespace: "qa"}, "a-web", ""},
		{"the label picks a later profile", Pod{Namespace: "dev", Labels: map[string]string{"app": "web", sv1alpha1.ProfileLabel: "dev"}}, "dev", ""},
		{"the label's profile must match", Pod{Namespace: "qa", Labels: map[string]string{sv1alpha1.ProfileLabel: "dev"}}, "",
			`metadata.labels[serverless.gantry.dev/profile]: the pod does not match ServerlessProfile "dev": it selects namespace dev`},
		{"the label's profile must exist", Pod{Namespace: "dev", Labels: map[string]string{sv1alpha1.ProfileLabel: "nope"}}, "",
			`no ServerlessProfile called "nope" selects pods`},
		{"a profile being deleted is not picked by label", Pod{Namespace: "dev", Labels: map[string]string{sv1alpha1.ProfileLabel: "0-deleting"}}, "",
			`no ServerlessProfile called "0-deleting" selects pods`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(all, tc.pod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Errorf("got %q, want %q", name, tc.want)
			}
		})
	}
}
