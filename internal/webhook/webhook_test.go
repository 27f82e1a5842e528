package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

var cfg = config.Static{}

func request(op admissionv1.Operation, kind string, obj, old string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Group: "serving.knative.dev", Version: "v1", Kind: kind},
		Operation: op,
		Object:    runtime.RawExtension{Raw: []byte(obj)},
		OldObject: runtime.RawExtension{Raw: []byte(old)},
		UserInfo:  authenticationv1.UserInfo{Username: "alice"},
	}}
}

const hello = `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"default"},
"spec":{"template":{"spec":{"containers":[{"image":"registry/hello"}]}}}}`

func TestDefaultingPatchesDefaultsAndCreator(t *testing.T) {
	resp := Defaulting(cfg).Handle(context.Background(), request(admissionv1.Create, "Service", hello, ""))
	if !resp.Allowed {
		t.Fatalf("refused: %v", resp.Result)
	}
	patches, _ := json.Marshal(resp.Patches)
	for _, want := range []string{`"/spec/template/spec/containers/0/name"`, `"user-container"`, `"/spec/traffic"`, `"/spec/template/spec/timeoutSeconds"`, `"alice"`} {
		if !strings.Contains(string(patches), want) {
			t.Errorf("patch %s lacks %s", patches, want)
		}
	}
}

func TestDefaultingUpdateKeepsCreator(t *testing.T) {
	old := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"default",
"annotations":{"serving.knative.dev/creator":"bob","serving.knative.dev/lastModifier":"bob"}},
"spec":{"template":{"spec":{"containers":[{"image":"registry/hello"}]}}}}`
	updated := strings.Replace(old, "registry/hello", "registry/hello:v2", 1)
	resp := Defaulting(cfg).Handle(context.Background(), request(admissionv1.Update, "Service", updated, old))
	patches, _ := json.Marshal(resp.Patches)
	if strings.Contains(string(patches), "creator") {
		t.Errorf("patch %s rewrites the creator", patches)
	}
	if !strings.Contains(string(patches), "alice") {
		t.Errorf("patch %s does not record alice as the last modifier", patches)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	bad := `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"default"},
"spec":{"template":{"spec":{"containers":[{"image":"registry/hello"}]}},"traffic":[{"latestRevision":true,"percent":90}]}}`
	resp := Validation(cfg).Handle(context.Background(), request(admissionv1.Create, "Service", bad, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "traffic targets sum to 90, want 100: spec.traffic") {
		t.Fatalf("response = allowed %v, %q; want a refusal naming spec.traffic", resp.Allowed, resp.Result.Message)
	}
	ok := Validation(cfg).Handle(context.Background(), request(admissionv1.Create, "Service", hello, ""))
	if !ok.Allowed {
		t.Fatalf("a valid service was refused: %q", ok.Result.Message)
	}
}

func TestRevisionSpecIsImmutable(t *testing.T) {
	rev := `{"apiVersion":"serving.knative.dev/v1","kind":"Revision","metadata":{"name":"hello-00001","namespace":"default"},
"spec":{"containers":[{"image":"registry/hello"}]}}`
	changed := strings.Replace(rev, "registry/hello", "registry/other", 1)
	resp := Validation(cfg).Handle(context.Background(), request(admissionv1.Update, "Revision", changed, rev))
	if resp.Allowed {
		t.Fatal("a change of a revision's spec was allowed")
	}
}

func TestMalformedAndForeignObjects(t *testing.T) {
	resp := Validation(cfg).Handle(context.Background(), request(admissionv1.Create, "Service", "{not json", ""))
	if resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("malformed object: allowed %v code %d, want 400", resp.Allowed, resp.Result.Code)
	}
	other := request(admissionv1.Create, "Other", "{}", "")
	if resp := Validation(cfg).Handle(context.Background(), other); !resp.Allowed {
		t.Error("an unknown kind was refused; the webhook should let it pass")
	}
}

func TestConfigurationsCoverEveryKind(t *testing.T) {
	m, v := Configurations("https://127.0.0.1:6444", []byte("ca"))
	want := "[configurations revisions routes services]"
	for _, got := range []string{strings.Join(m.Webhooks[0].Rules[0].Resources, " "), strings.Join(v.Webhooks[0].Rules[0].Resources, " ")} {
		if "["+got+"]" != want {
			t.Errorf("resources = [%s], want %s", got, want)
		}
	}
	if *m.Webhooks[0].ClientConfig.URL != "https://127.0.0.1:6444"+DefaultingPath || string(v.Webhooks[0].ClientConfig.CABundle) != "ca" {
		t.Errorf("client config = %s, %q", *m.Webhooks[0].ClientConfig.URL, v.Webhooks[0].ClientConfig.CABundle)
	}
}
