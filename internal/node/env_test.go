package node

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type sources struct{}

func (sources) ConfigMap(name string) (map[string]string, error) {
	if name == "settings" {
		return map[string]string{"COLOR": "blue"}, nil
	}
	return nil, errors.New("not found")
}

func (sources) Secret(name string) (map[string][]byte, error) {
	if name == "creds" {
		return map[string][]byte{"token": []byte("s3cret")}, nil
	}
	return nil, errors.New("not found")
}

func TestEnv(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web"}}}
	pod.Status.PodIP = "10.244.0.7"
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}, Prefix: "CFG_"}},
		Env: []corev1.EnvVar{
			{Name: "PATH", Value: "/bin"},
			{Name: "GREETING", Value: "hi $(CFG_COLOR) $$(CFG_COLOR) $(NOPE)"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k", Optional: ptr.To(true)}}},
		},
	}
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	c.Env = append(c.Env, corev1.EnvVar{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}})
	got, err := Env(pod, c, []string{"PATH=/usr/bin", "LANG=C"}, sources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "LANG=C", "CFG_COLOR=blue", "GREETING=hi blue $(CFG_COLOR) $(NOPE)", "TOKEN=s3cret", "POD=p", "IP=10.244.0.7", "APP=web", "MEM=64"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
}

func TestEnvMissingSourceIsNamed(t *testing.T) {
	c := &corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}}
	_, err := Env(&corev1.Pod{}, c, nil, sources{})
	if err == nil || err.Error() != "env X: not found" {
		t.Errorf("err = %v, want env X: not found", err)
	}
}

func TestArgv(t *testing.T) {
	entry, cmd := []string{"/app"}, []string{"--serve"}
	env := []string{"PORT=8080"}
	tests := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image defaults", nil, nil, []string{"/app", "--serve"}},
		{"args replace cmd", nil, []string{"--port=$(PORT)"}, []string{"/app", "--port=8080"}},
		{"command replaces both", []string{"/bin/sh", "-c"}, nil, []string{"/bin/sh", "-c"}},
		{"command and args", []string{"/bin/echo"}, []string{"$(PORT)", "$$(PORT)"}, []string{"/bin/echo", "8080", "$(PORT)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Argv(&corev1.Container{Command: tt.command, Args: tt.args}, entry, cmd, env)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Argv (-want +got):\n%s", diff)
			}
		})
	}
}

// apiSources is a Sources that knows the API server's Service, as the node's does.
type apiSources struct{ mapSources }

func (apiSources) APIServer() (string, int32, bool) { return "10.43.0.1", 443, true }

func TestEnvAPIServerService(t *testing.T) {
	pod := &corev1.Pod{}
	c := &corev1.Container{Env: []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_PORT", Value: "8443"}}}
	got, err := Env(pod, c, []string{"PATH=/bin"}, &apiSources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PATH=/bin",
		"KUBERNETES_SERVICE_HOST=10.43.0.1",
		// The container's own env wins, as on a kubelet.
		"KUBERNETES_SERVICE_PORT=8443",
		"KUBERNETES_SERVICE_PORT_HTTPS=443",
		"KUBERNETES_PORT=tcp://10.43.0.1:443",
		"KUBERNETES_PORT_443_TCP=tcp://10.43.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO=tcp",
		"KUBERNETES_PORT_443_TCP_PORT=443",
		"KUBERNETES_PORT_443_TCP_ADDR=10.43.0.1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}
