package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func configMapRequest(ns, name, data string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Update, Namespace: ns, Name: name,
		Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `","namespace":"` + ns + `"},"data":` + data + `}`)},
	}}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name, ns, cm, data string
		wantDenied         string
	}{
		{"good defaults", "gantry-system", "config-defaults", `{"revision-timeout-seconds":"123"}`, ""},
		{"bad defaults", "gantry-system", "config-defaults", `{"revision-timeout-seconds":"soon"}`, `config-defaults: revision-timeout-seconds: "soon" is not an integer`},
		{"bad autoscaler", "gantry-system", "config-autoscaler", `{"stable-window":"1s"}`, "config-autoscaler: stable-window"},
		{"unknown key", "gantry-system", "config-features", `{"kubernetes.podspec-nope":"enabled"}`, "kubernetes.podspec-nope: unknown key"},
		{"other configmap", "gantry-system", "my-settings", `{"anything":"goes"}`, ""},
		{"other namespace", "default", "config-defaults", `{"revision-timeout-seconds":"soon"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ConfigValidation().Handle(context.Background(), configMapRequest(tc.ns, tc.cm, tc.data))
			if tc.wantDenied == "" {
				if !resp.Allowed {
					t.Fatalf("refused: %v", resp.Result.Message)
				}
				return
			}
			if resp.Allowed || !strings.Contains(resp.Result.Message, tc.wantDenied) {
				t.Errorf("allowed=%v message %q, want a refusal containing %q", resp.Allowed, resp.Result.Message, tc.wantDenied)
			}
		})
	}
}
