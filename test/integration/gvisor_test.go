package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/testenv"
)

// TestGVisorRuntimeClass: a pod with runtimeClassName gvisor runs on gVisor's kernel (the
// /proc/version it reads is not the host's) and serves on its address; a RuntimeClass the
// node does not serve is refused, naming the field.
func TestGVisorRuntimeClass(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Skip("gVisor's runsc is not installed (apt-get install runsc)")
	}
	ns := newNamespace(t, env.Client)
	gvisor := "gvisor"
	pod := podWith("gv", corev1.Container{Name: "rt", Image: env.Image(t, "runtime")})
	pod.Spec.RuntimeClassName = &gvisor
	createPod(t, env, ns, pod)
	pod = waitPod(t, env, ns, "gv", "running", 90*time.Second, running)
	var rep struct {
		Files map[string]string `json:"files"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+pod.Status.PodIP+":8080/?file=/proc/version")), &rep); err != nil {
		t.Fatal(err)
	}
	host, err := os.ReadFile("/proc/version")
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Files["/proc/version"]; got == "" || got == string(host) {
		t.Errorf("the gvisor pod reads /proc/version %q; want gVisor's, not the host's", got)
	}

	other := "kata"
	refused := podWith("kata", corev1.Container{Name: "rt", Image: env.Image(t, "runtime")})
	refused.Spec.RuntimeClassName = &other
	_, err = env.Client.CoreV1().Pods(ns).Create(t.Context(), refused, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "kata") {
		t.Errorf("a pod of an unknown RuntimeClass: %v; want the API to refuse it", err)
	}
}
