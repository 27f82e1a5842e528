package admission

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

type profiles []*sv1alpha1.ServerlessProfile

func (p profiles) ListProfiles(context.Context) ([]*sv1alpha1.ServerlessProfile, error) {
	return p, nil
}
func (p profiles) CountProfiles(context.Context) (int, error) { return len(p), nil }

func activeProfile(name string, sels ...sv1alpha1.Selector) *sv1alpha1.ServerlessProfile {
	p := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: sels}}
	p.Status.MarkActive()
	return p
}

func request(op admissionv1.Operation, kind string, obj, old any) admission.Request {
	raw := func(o any) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, Kind: metav1.GroupVersionKind{Kind: kind}, Namespace: "dev",
		Object: raw(obj), OldObject: raw(old),
	}}
}

// apply returns pod as the API server stores it after resp's patch.
func apply(t *testing.T, pod *corev1.Pod, resp admission.Response) *corev1.Pod {
	t.Helper()
	raw, _ := json.Marshal(pod)
	if resp.Patch == nil {
		return pod
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("patch %s: %v", resp.Patch, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", resp.Patch, err)
	}
	got := &corev1.Pod{}
	if err := json.Unmarshal(out, got); err != nil {
		t.Fatal(err)
	}
	return got
}

func newPod(labels map[string]string, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "dev", Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

func TestPods(t *testing.T) {
	all := profiles{
		activeProfile("web", sv1alpha1.Selector{Namespace: "dev", Labels: map[string]string{"app": "web"}}),
		activeProfile("a-first", sv1alpha1.Selector{Namespace: "d?v", Labels: map[string]string{"tier": "*"}}),
	}
	h := Pods(all, config.Static{})
	plain := corev1.Container{Name: "c", Image: "x"}

	t.Run("selected", func(t *testing.T) {
		pod := newPod(map[string]string{"app": "web"}, plain)
		pod.Annotations = map[string]string{"keep": "me"}
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		if !resp.Allowed {
			t.Fatalf("refused: %v", resp.Result)
		}
		got := apply(t, pod, resp)
		if got.Spec.SchedulerName != sv1alpha1.SchedulerName || got.Labels[sv1alpha1.ProfileLabel] != "web" || got.Labels["app"] != "web" ||
			got.Annotations[sv1alpha1.CapacityProvisionedAnnotation] != "0.25vCPU 0.5GB" ||
			got.Annotations[sv1alpha1.EphemeralStorageProvisionedAnnotation] != "20Gi" || got.Annotations["keep"] != "me" {
			t.Errorf("got %+v %+v %q", got.Labels, got.Annotations, got.Spec.SchedulerName)
		}
	})
	t.Run("first by name", func(t *testing.T) {
		pod := newPod(map[string]string{"app": "web", "tier": "front"}, plain)
		got := apply(t, pod, h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil)))
		if got.Labels[sv1alpha1.ProfileLabel] != "a-first" {
			t.Errorf("profile %q, want a-first", got.Labels[sv1alpha1.ProfileLabel])
		}
	})
	t.Run("not selected: untouched", func(t *testing.T) {
		pod := newPod(map[string]string{"app": "api"}, plain)
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		if !resp.Allowed || resp.Patch != nil {
			t.Errorf("got %+v", resp)
		}
	})
	t.Run("not selected: forged size annotations are dropped", func(t *testing.T) {
		pod := newPod(nil, plain)
		pod.Annotations = map[string]string{sv1alpha1.CapacityProvisionedAnnotation: "16vCPU 120GB", sv1alpha1.EphemeralStorageProvisionedAnnotation: "1Gi", "keep": "me"}
		got := apply(t, pod, h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil)))
		if len(got.Annotations) != 1 || got.Annotations["keep"] != "me" {
			t.Errorf("annotations %v", got.Annotations)
		}
	})
	t.Run("not selected: the serverless scheduler is refused", func(t *testing.T) {
		pod := newPod(nil, plain)
		pod.Spec.SchedulerName = sv1alpha1.SchedulerName
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.schedulerName: gantry-serverless is given by a ServerlessProfile") {
			t.Errorf("got %+v", resp.Result)
		}
	})
	t.Run("unsupported fields and size, in one message", func(t *testing.T) {
		c := plain
		c.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		c.Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}
		pod := newPod(map[string]string{"app": "web"}, c)
		pod.Spec.HostNetwork = true
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		msg := resp.Result.Message
		for _, want := range []string{"ServerlessProfile web", "spec.hostNetwork", "spec.containers[0].securityContext.privileged", "spec.containers[0].ports[0].hostPort", "cpu 64", "fit no serverless size"} {
			if resp.Allowed || !strings.Contains(msg, want) {
				t.Errorf("message %q does not name %q", msg, want)
			}
		}
	})
	t.Run("the profile label must match", func(t *testing.T) {
		pod := newPod(map[string]string{sv1alpha1.ProfileLabel: "web"}, plain)
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		if resp.Allowed || !strings.Contains(resp.Result.Message, `does not match ServerlessProfile "web"`) {
			t.Errorf("got %+v", resp.Result)
		}
	})
	t.Run("a DaemonSet pod is not selected", func(t *testing.T) {
		pod := newPod(map[string]string{"app": "web"}, plain)
		pod.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "ds", Controller: ptr.To(true)}}
		resp := h.Handle(context.Background(), request(admissionv1.Create, "Pod", pod, nil))
		if !resp.Allowed || resp.Patch != nil {
			t.Errorf("got %+v", resp)
		}
	})
	t.Run("the marks cannot change", func(t *testing.T) {
		old := newPod(map[string]string{sv1alpha1.ProfileLabel: "web"}, plain)
		pod := old.DeepCopy()
		pod.Labels = map[string]string{"other": "x"}
		pod.Annotations = map[string]string{sv1alpha1.CapacityProvisionedAnnotation: "1vCPU 2GB"}
		resp := h.Handle(context.Background(), request(admissionv1.Update, "Pod", pod, old))
		if resp.Allowed || !strings.Contains(resp.Result.Message, "metadata.labels[serverless.gantry.dev/profile], metadata.annotations[serverless.gantry.dev/capacity-provisioned]") {
			t.Errorf("got %+v", resp.Result)
		}
		same := old.DeepCopy()
		same.Labels["other"] = "x"
		if resp := h.Handle(context.Background(), request(admissionv1.Update, "Pod", same, old)); !resp.Allowed {
			t.Errorf("another label's change refused: %+v", resp.Result)
		}
	})
}

func TestProfiles(t *testing.T) {
	p := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: []sv1alpha1.Selector{{Namespace: "dev"}}}}
	nine, ten := make(profiles, 9), make(profiles, 10)
	if resp := Profiles(nine).Handle(context.Background(), request(admissionv1.Create, "ServerlessProfile", p, nil)); !resp.Allowed {
		t.Errorf("the 10th refused: %+v", resp.Result)
	}
	resp := Profiles(ten).Handle(context.Background(), request(admissionv1.Create, "ServerlessProfile", p, nil))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "at most 10 ServerlessProfiles") {
		t.Errorf("the 11th: %+v", resp.Result)
	}
	changed := p.DeepCopy()
	changed.Spec.Selectors[0].Namespace = "qa"
	resp = Profiles(nine).Handle(context.Background(), request(admissionv1.Update, "ServerlessProfile", changed, p))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "is immutable") {
		t.Errorf("a spec update: %+v", resp.Result)
	}
	if resp := Profiles(ten).Handle(context.Background(), request(admissionv1.Update, "ServerlessProfile", p, p)); !resp.Allowed {
		t.Errorf("an update at the quota refused: %+v", resp.Result)
	}
}

// TestConfigurations: both webhooks fail closed, and the pod webhook never sees the system
// namespaces, so that a webhook that is down cannot keep them from starting.
func TestConfigurations(t *testing.T) {
	m, v := Configurations("https://127.0.0.1:6444", []byte("ca"))
	pods := m.Webhooks[0]
	if *pods.FailurePolicy != "Fail" || *v.Webhooks[0].FailurePolicy != "Fail" {
		t.Errorf("failure policies %s, %s; want Fail", *pods.FailurePolicy, *v.Webhooks[0].FailurePolicy)
	}
	if *pods.ClientConfig.URL != "https://127.0.0.1:6444"+PodsPath || *v.Webhooks[0].ClientConfig.URL != "https://127.0.0.1:6444"+ProfilesPath {
		t.Errorf("URLs %s, %s", *pods.ClientConfig.URL, *v.Webhooks[0].ClientConfig.URL)
	}
	sel, err := metav1.LabelSelectorAsSelector(pods.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range append([]string{"default", "shop"}, sv1alpha1.SystemNamespaces...) {
		system := slices.Contains(sv1alpha1.SystemNamespaces, ns)
		if got := sel.Matches(labels.Set{corev1.LabelMetadataName: ns}); got == system {
			t.Errorf("namespace %s sent to the pod webhook: %v", ns, got)
		}
	}
}
