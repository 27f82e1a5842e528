package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/testenv"
)

func podWith(name string, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{c},
			TerminationGracePeriodSeconds: ptr.To[int64](2),
		},
	}
}

func createPod(t *testing.T, env *testenv.Env, ns string, pod *corev1.Pod) {
	t.Helper()
	if _, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
}

// waitPod polls the pod until cond accepts it; a timeout reports the pod's last status.
func waitPod(t *testing.T, env *testenv.Env, ns, name, what string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	waitFor(t, "pod "+name+" "+what, timeout, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if cond(p) {
			found = p
			return true, nil
		}
		status, _ := json.MarshalIndent(p.Status, "", "  ")
		return false, fmt.Errorf("last status:\n%s", status)
	})
	return found
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// httpGet fetches url from a pod. A pod without a readiness probe is Ready once its
// container has started, which may be before the app listens (gVisor's kernel starts
// slower still), so a refused connection is retried for a while.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNodeIsReady(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	n, err := env.Client.CoreV1().Nodes().Get(context.Background(), "gantry", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, c := range n.Status.Conditions {
		ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
	}
	if !ready || n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() {
		t.Errorf("node: ready=%v capacity=%v", ready, n.Status.Capacity)
	}
}

func TestDeploymentRunsInSandboxes(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	labels := map[string]string{"app": "hello"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []corev1.Container{{
						Name: "hello", Image: env.Image(t, "hello"),
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrStr(8080)}}, PeriodSeconds: 1},
					}},
				},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	waitFor(t, "a Running, Ready pod", 90*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
		if err != nil || len(pods.Items) != 1 {
			return false, err
		}
		pod = pods.Items[0]
		return running(&pod), nil
	})
	if got := httpGet(t, "http://"+pod.Status.PodIP+":8080/"); !strings.Contains(got, "Hello") {
		t.Errorf("GET pod IP = %q, want the hello reply", got)
	}
	t.Run("logs through the API server", func(t *testing.T) {
		waitFor(t, "the container's log line", 30*time.Second, func(ctx context.Context) (bool, error) {
			b, err := env.Client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "hello"}).DoRaw(ctx)
			return err == nil && len(b) > 0, nil
		})
	})
	t.Run("scaled to three, three sandboxes with distinct IPs", func(t *testing.T) {
		scale, err := env.Client.AppsV1().Deployments(ns).GetScale(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scale.Spec.Replicas = 3
		if _, err := env.Client.AppsV1().Deployments(ns).UpdateScale(ctx, "hello", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "three running pods with distinct IPs", 120*time.Second, func(ctx context.Context) (bool, error) {
			pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
			if err != nil {
				return false, err
			}
			ips := map[string]bool{}
			for _, p := range pods.Items {
				if running(&p) {
					ips[p.Status.PodIP] = true
				}
			}
			return len(ips) == 3, nil
		})
	})
	t.Run("deleted pods go away", func(t *testing.T) {
		if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "hello", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "no pods left", 120*time.Second, func(ctx context.Context) (bool, error) {
			pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(pods.Items) == 0, err
		})
	})
}

func intOrStr(port int) intstr.IntOrString { return intstr.FromInt(port) }

func TestRuntimeContract(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	c := corev1.Container{
		Name: "runtime", Image: env.Image(t, "runtime"),
		Args: []string{"--flag", "$(GREETING)"},
		Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
		SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](1234), RunAsGroup: ptr.To[int64](5678)},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("128Mi"), corev1.ResourceCPU: resource.MustParse("500m")}},
	}
	createPod(t, env, ns, podWith("runtime", c))
	pod := waitPod(t, env, ns, "runtime", "Running and Ready", 90*time.Second, running)
	body := httpGet(t, "http://"+pod.Status.PodIP+":8080/")
	var info struct {
		Env    map[string]string `json:"env"`
		Args   []string          `json:"args"`
		Cgroup struct {
			MemoryLimitBytes *int64 `json:"memoryLimitBytes"`
			CPUMillicores    *int64 `json:"cpuMillicores"`
		} `json:"cgroup"`
		User struct {
			UID int `json:"uid"`
			GID int `json:"gid"`
		} `json:"user"`
		PIDs            []int `json:"pids"`
		ProcSysReadOnly bool  `json:"procSysReadOnly"`
		Stdin           struct {
			EOF bool `json:"eof"`
		} `json:"stdin"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("runtime reply %q: %v", body, err)
	}
	if info.Env["GREETING"] != "hi" || info.Env["POD_NAME"] != "runtime" {
		t.Errorf("env = %v, want GREETING=hi and POD_NAME=runtime", info.Env)
	}
	if len(info.Args) < 3 || info.Args[1] != "--flag" || info.Args[2] != "hi" {
		t.Errorf("args = %v, want [<program> --flag hi]", info.Args)
	}
	if info.User.UID != 1234 || info.User.GID != 5678 {
		t.Errorf("user = %d:%d, want 1234:5678", info.User.UID, info.User.GID)
	}
	if info.Cgroup.MemoryLimitBytes == nil || *info.Cgroup.MemoryLimitBytes != 128<<20 {
		t.Errorf("memory limit = %v, want %d", info.Cgroup.MemoryLimitBytes, 128<<20)
	}
	if info.Cgroup.CPUMillicores == nil || *info.Cgroup.CPUMillicores != 500 {
		t.Errorf("cpu = %v, want 500 millicores", info.Cgroup.CPUMillicores)
	}
	if len(info.PIDs) > 3 || !info.ProcSysReadOnly || !info.Stdin.EOF {
		t.Errorf("pids %v (want only the container's), /proc/sys read-only %v, stdin EOF %v", info.PIDs, info.ProcSysReadOnly, info.Stdin.EOF)
	}
}

func TestRefusedAndFailingPods(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	t.Run("privileged pod is refused naming the field", func(t *testing.T) {
		// The API refuses it (--allow-privileged=false); the node's own refusal, for clusters
		// that allow them, is tested in internal/node.
		c := corev1.Container{Name: "p", Image: env.Image(t, "hello"), SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}
		_, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), podWith("privileged", c), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "spec.containers[0].securityContext.privileged") {
			t.Errorf("creating a privileged pod: err = %v, want a refusal naming the field", err)
		}
	})
	t.Run("missing image gives ErrImagePull with the registry's message", func(t *testing.T) {
		c := corev1.Container{Name: "m", Image: env.RegistryHost + "/gantry/test/nope:latest"}
		createPod(t, env, ns, podWith("missing", c))
		p := waitPod(t, env, ns, "missing", "waiting on the image", 60*time.Second, func(p *corev1.Pod) bool {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
					return true
				}
			}
			return false
		})
		if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "NAME_UNKNOWN") && !strings.Contains(msg, "MANIFEST_UNKNOWN") {
			t.Errorf("message = %q, want the registry's error code", msg)
		}
	})
	t.Run("crashing container goes into CrashLoopBackOff with its exit code", func(t *testing.T) {
		c := corev1.Container{Name: "f", Image: env.Image(t, "failing"), Env: []corev1.EnvVar{{Name: "DELAY", Value: "100ms"}}}
		createPod(t, env, ns, podWith("failing", c))
		p := waitPod(t, env, ns, "failing", "CrashLoopBackOff", 90*time.Second, func(p *corev1.Pod) bool {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" && cs.LastTerminationState.Terminated != nil {
					return true
				}
			}
			return false
		})
		if code := p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode; code != 5 {
			t.Errorf("exit code = %d, want 5", code)
		}
	})
	t.Run("memory limit OOM-kills and restarts", func(t *testing.T) {
		c := corev1.Container{Name: "a", Image: env.Image(t, "autoscale"),
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("350Mi")}}}
		createPod(t, env, ns, podWith("bloat", c))
		p := waitPod(t, env, ns, "bloat", "Running", 90*time.Second, running)
		if got := httpGet(t, "http://"+p.Status.PodIP+":8080/?bloat=200"); strings.Contains(got, "error") {
			t.Errorf("bloat=200 under 350Mi: %q", got)
		}
		_, _ = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + p.Status.PodIP + ":8080/?bloat=500")
		waitPod(t, env, ns, "bloat", "OOMKilled and restarted", 90*time.Second, func(p *corev1.Pod) bool {
			for _, cs := range p.Status.ContainerStatuses {
				if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" && cs.RestartCount > 0 {
					return true
				}
			}
			return false
		})
	})
}

func TestVolumesAndProbes(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"color": "blue"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"token": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := corev1.Container{
		Name: "runtime", Image: env.Image(t, "runtime"),
		VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "sec", MountPath: "/etc/sec"}, {Name: "scratch", MountPath: "/scratch"}},
		// An exec probe that passes only once the configMap file is there.
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/app", "-check-file", "/etc/cfg/color"}}}, PeriodSeconds: 1},
		LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}}, PeriodSeconds: 1},
	}
	pod := podWith("volumes", c)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	createPod(t, env, ns, pod)
	p := waitPod(t, env, ns, "volumes", "Running and Ready", 90*time.Second, running)
	body := httpGet(t, "http://"+p.Status.PodIP+":8080/?file=/etc/cfg/color&file=/etc/sec/token")
	for _, want := range []string{"blue", "s3cret"} {
		if !strings.Contains(body, want) {
			t.Errorf("runtime reply lacks %q from the mounted volumes:\n%s", want, body)
		}
	}
}
