package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/test/images/probe-sec/report"
)

// podNamespace is newNamespace once its default service account exists, which pods need
// to be admitted.
func podNamespace(t *testing.T, env *testenv.Env) string {
	t.Helper()
	ns := newNamespace(t, env.Client)
	waitFor(t, "the default service account of "+ns, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return ns
}

// waitingReason waits until the pod's first container waits with reason and returns its
// message.
func waitingReason(t *testing.T, env *testenv.Env, ns, name, reason string) string {
	t.Helper()
	p := waitPod(t, env, ns, name, "waiting with "+reason, 90*time.Second, func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == reason {
				return true
			}
		}
		return false
	})
	return p.Status.ContainerStatuses[0].State.Waiting.Message
}

// TestSubPathSymlinkToTheHostIsRefused is the kubelet's CVE-2017-1002101 / CVE-2021-25741: an
// init container plants esc -> / in an emptyDir and the pod's container mounts subPath esc.
// Before the node resolved subPaths inside their volume, the container got the host's /.
func TestSubPathSymlinkToTheHostIsRefused(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := podNamespace(t, env)
	img := env.Image(t, "probe-sec")
	pod := podWith("subpath", corev1.Container{Name: "victim", Image: img, Args: []string{"-ls", "/esc"},
		VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/esc", SubPath: "esc"}}})
	pod.Spec.InitContainers = []corev1.Container{{Name: "plant", Image: img, Args: []string{"-symlink", "/", "/shared/esc"},
		VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	createPod(t, env, ns, pod)
	if msg := waitingReason(t, env, ns, "subpath", "CreateContainerError"); !strings.Contains(msg, `subPath "esc": resolves outside its volume`) {
		t.Errorf("message %q, want the subPath refused", msg)
	}
}

func TestSecurityContextIsHonoured(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := podNamespace(t, env)
	img := env.Image(t, "probe-sec")
	probe := func(t *testing.T, name string, c corev1.Container) report.Report {
		t.Helper()
		c.Name = "probe"
		if c.Image == "" {
			c.Image = img
		}
		createPod(t, env, ns, podWith(name, c))
		p := waitPod(t, env, ns, name, "Running and Ready", 90*time.Second, running)
		var r report.Report
		if body := httpGet(t, "http://"+p.Status.PodIP+":8080/"); json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("probe-sec answered %q", body)
		}
		return r
	}
	t.Run("capabilities, read-only root, user", func(t *testing.T) {
		r := probe(t, "restricted", corev1.Container{SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](1000), RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}})
		if r.UID != 1000 || r.Status["CapBnd"] != "0000000000000000" || r.Status["NoNewPrivs"] != "1" {
			t.Errorf("uid %d, CapBnd %s, NoNewPrivs %s; want 1000, none, 1", r.UID, r.Status["CapBnd"], r.Status["NoNewPrivs"])
		}
		if !strings.Contains(r.RootWrite, "read-only file system") {
			t.Errorf("writing to /: %q, want a read-only file system", r.RootWrite)
		}
		if r.IOUringSetup != "EPERM" || r.Status["Seccomp"] != "2" {
			t.Errorf("io_uring_setup %s, Seccomp %s; want EPERM under the default filter", r.IOUringSetup, r.Status["Seccomp"])
		}
	})
	t.Run("a named USER runs as that user", func(t *testing.T) {
		r := probe(t, "named", corev1.Container{Image: namedUserImage(t, env, img)})
		if r.UID != 4321 || r.GID != 4321 || !slices.Contains(r.Groups, 555) {
			t.Errorf("uid %d gid %d groups %v; want 4321:4321 with group 555 (from the image's /etc/passwd and /etc/group)", r.UID, r.GID, r.Groups)
		}
	})
	t.Run("runAsNonRoot with uid 0 is refused", func(t *testing.T) {
		createPod(t, env, ns, podWith("rootless", corev1.Container{Name: "probe", Image: img,
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}}))
		if msg := waitingReason(t, env, ns, "rootless", "CreateContainerConfigError"); !strings.Contains(msg, "container has runAsNonRoot and image will run as root") {
			t.Errorf("message %q, want the kubelet's reason", msg)
		}
	})
	t.Run("Unconfined seccomp is refused by default", func(t *testing.T) {
		// Pod Security's baseline level refuses Unconfined at the API; a namespace that opts
		// out of it still meets the node's refusal.
		ns := podNamespace(t, env)
		nsObj, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nsObj.Labels["pod-security.kubernetes.io/enforce"] = "privileged"
		if _, err := env.Client.CoreV1().Namespaces().Update(context.Background(), nsObj, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := podWith("unconfined", corev1.Container{Name: "probe", Image: img})
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		// Pod Security reads namespaces from its cache: until the new label reaches it, the
		// pod is still refused at the API.
		waitFor(t, "Pod Security to see the namespace opt out", 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			return err == nil, err
		})
		if msg := waitingReason(t, env, ns, "unconfined", "CreateContainerConfigError"); !strings.Contains(msg, "--allow-unconfined-seccomp") {
			t.Errorf("message %q, want the flag named", msg)
		}
	})
}

// namedUserImage pushes base with /etc/passwd and /etc/group added and USER app, and returns
// its reference.
func namedUserImage(t *testing.T, env *testenv.Env, base string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:4321:4321::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:4321:\nextra:x:555:app\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	baseRef, err := image.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(baseRef, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.User = "app"
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref := env.RegistryHost + "/gantry/test/probe-sec-named:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	parsed, err := image.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(parsed, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	return ref
}
