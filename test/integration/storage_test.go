package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/storage"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// fileResult is the files test image's answer.
type fileResult struct {
	Body  string `json:"body"`
	UID   int    `json:"uid"`
	Error string `json:"error"`
}

// fileCall reads (body == nil) or writes a file in a pod running the files image, at addr
// (host:port), sending host as the Host header when it is not empty (the gateway).
func fileCall(t *testing.T, addr, host, path string, body *string) fileResult {
	t.Helper()
	method, r := http.MethodGet, io.Reader(nil)
	if body != nil {
		method, r = http.MethodPut, strings.NewReader(*body)
	}
	req, err := http.NewRequest(method, "http://"+addr+"/file?path="+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var res fileResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("%s %s: status %d: %v", method, path, resp.StatusCode, err)
	}
	return res
}

func writeFile(t *testing.T, podIP, path, body string) fileResult {
	t.Helper()
	return fileCall(t, podIP+":8080", "", path, &body)
}

func readFile(t *testing.T, podIP, path string) fileResult {
	t.Helper()
	return fileCall(t, podIP+":8080", "", path, nil)
}

func newClaim(name, class string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: modes,
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if class != "" {
		pvc.Spec.StorageClassName = ptr.To(class)
	}
	return pvc
}

// waitBound waits until the claim is Bound and returns its volume.
func waitBound(t *testing.T, env *testenv.Env, ns, name string) *corev1.PersistentVolume {
	t.Helper()
	var pv *corev1.PersistentVolume
	waitFor(t, "claim "+name+" Bound", 60*time.Second, func(ctx context.Context) (bool, error) {
		pvc, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pvc.Status.Phase != corev1.ClaimBound {
			return false, fmt.Errorf("phase %s", pvc.Status.Phase)
		}
		pv, err = env.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		return err == nil, err
	})
	return pv
}

// claimPod runs the files image with the claim mounted at /data (readOnly as asked).
func claimPod(env *testenv.Env, t *testing.T, name, claim string, readOnly bool) *corev1.Pod {
	pod := podWith(name, corev1.Container{Name: "files", Image: env.Image(t, "files"),
		VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/data"}}})
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}}
	return pod
}

// waitEvent waits for an event of the object called name whose message contains want.
func waitEvent(t *testing.T, env *testenv.Env, ns, name, want string) {
	t.Helper()
	waitFor(t, "an event of "+name+" saying "+want, 90*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
		var seen []string
		for _, e := range evs.Items {
			if strings.Contains(e.Message, want) {
				return true, nil
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return false, fmt.Errorf("events: %q", seen)
	})
}

// TestSharedStorage: the default class gantry-shared binds a ReadWriteMany claim to a
// directory of the data dir; two pods of a Deployment, each in a user namespace of its own,
// write and read each other's files there; subPath and readOnly are honoured; deleting the
// claim deletes the directory (reclaim policy Delete).
func TestSharedStorage(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()

	sc, err := env.Client.StorageV1().StorageClasses().Get(ctx, storage.ClassName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Provisioner != storage.DriverName || sc.Annotations[storage.DefaultClassAnnotation] != "true" {
		t.Errorf("StorageClass %s: provisioner %q, annotations %v; want %s, the default class", sc.Name, sc.Provisioner, sc.Annotations, storage.DriverName)
	}

	// A claim that names no class gets the default one.
	pvc, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newClaim("shared", "", corev1.ReadWriteMany), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv := waitBound(t, env, ns, "shared")
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != storage.DriverName || pv.Spec.StorageClassName != storage.ClassName {
		t.Fatalf("PersistentVolume %s: source %+v, class %q", pv.Name, pv.Spec.PersistentVolumeSource, pv.Spec.StorageClassName)
	}
	dir := filepath.Join(env.DataDir, datadir.SharedVolumesDir, pv.Spec.CSI.VolumeHandle)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("the volume's directory %s: %v", dir, err)
	}

	labels := map[string]string{"app": "shared"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shared"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       claimPod(env, t, "", "shared", false).Spec,
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ips []string
	waitFor(t, "two running pods", 120*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shared"})
		if err != nil {
			return false, err
		}
		ips = nil
		for _, p := range pods.Items {
			if running(&p) {
				ips = append(ips, p.Status.PodIP)
			}
		}
		return len(ips) == 2, fmt.Errorf("running: %v", ips)
	})
	a, b := ips[0], ips[1]
	if r := writeFile(t, a, "/data/from-a", "written by a"); r.Error != "" {
		t.Fatalf("pod a writes: %s", r.Error)
	}
	if r := readFile(t, b, "/data/from-a"); r.Body != "written by a" || r.UID != 0 {
		t.Errorf("pod b reads a's file: %+v; want its content, owned by b's root", r)
	}
	if r := writeFile(t, b, "/data/from-a", "overwritten by b"); r.Error != "" {
		t.Errorf("pod b writes a's file: %s", r.Error)
	}
	if r := writeFile(t, b, "/data/from-b", "written by b"); r.Error != "" {
		t.Fatalf("pod b writes: %s", r.Error)
	}
	if r := readFile(t, a, "/data/from-b"); r.Body != "written by b" {
		t.Errorf("pod a reads b's file: %+v", r)
	}
	// On the host the files belong to the ids the pods see (root, 0), not to either pod's
	// own range of host ids: the volume is idmapped into each pod's user namespace.
	for _, f := range []string{"from-a", "from-b"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s is owned by host %d:%d; want 0:0, the pods' root as the volume stores it", f, st.Uid, st.Gid)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "from-a")); err != nil || string(b) != "overwritten by b" {
		t.Errorf("the host's copy of from-a: %q, %v", b, err)
	}

	t.Run("readOnly", func(t *testing.T) {
		createPod(t, env, ns, claimPod(env, t, "reader", "shared", true))
		p := waitPod(t, env, ns, "reader", "running", 90*time.Second, running)
		if r := readFile(t, p.Status.PodIP, "/data/from-b"); r.Body != "written by b" {
			t.Errorf("the reader reads: %+v", r)
		}
		if r := writeFile(t, p.Status.PodIP, "/data/nope", "x"); !strings.Contains(r.Error, "read-only file system") {
			t.Errorf("the reader writes: %+v; want a read-only file system", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a write through a readOnly claim reached the volume: %v", err)
		}
	})

	t.Run("subPath", func(t *testing.T) {
		pod := claimPod(env, t, "sub", "shared", false)
		pod.Spec.Containers[0].VolumeMounts[0].SubPath = "nested/dir"
		createPod(t, env, ns, pod)
		p := waitPod(t, env, ns, "sub", "running", 90*time.Second, running)
		if r := writeFile(t, p.Status.PodIP, "/data/in-sub", "sub"); r.Error != "" {
			t.Fatalf("writing in the subPath: %s", r.Error)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "nested", "dir", "in-sub")); err != nil || string(b) != "sub" {
			t.Errorf("the file written under the subPath: %q, %v", b, err)
		}
	})

	t.Run("deleting the claim deletes the directory", func(t *testing.T) {
		if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "shared", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"reader", "sub"} {
			_ = env.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}
		if err := env.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, pvc.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The claim stays while pods use it (pvc-protection), then goes, then its volume.
		waitFor(t, "the volume and its directory gone", 180*time.Second, func(ctx context.Context) (bool, error) {
			_, err := env.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("PersistentVolume %s: %w", pv.Name, err)
			}
			_, err = os.Stat(dir)
			return errors.Is(err, os.ErrNotExist), fmt.Errorf("directory: %w", err)
		})
	})
}

// TestSharedStorageRetainAndLateBinding: a class with reclaim policy Retain keeps the
// directory when the claim goes; a pod whose claim is not bound yet waits in
// ContainerCreating, saying so, and starts once a class appears that provisions it; a
// PersistentVolume the node cannot serve (hostPath) is refused with an event saying why.
func TestSharedStorageRetainAndLateBinding(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	classes := env.Client.StorageV1().StorageClasses()

	late := "gantry-late-" + ns
	keep := storage.MakeClass(false)
	keep.Name = late
	keep.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRetain)
	t.Cleanup(func() { _ = classes.Delete(context.Background(), late, metav1.DeleteOptions{}) })

	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newClaim("late", late, corev1.ReadWriteOnce), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Placed by hand: kube-scheduler would hold the pod Pending until the claim is bound.
	pod := claimPod(env, t, "waits", "late", false)
	pod.Spec.NodeName = "gantry"
	createPod(t, env, ns, pod)
	waitEvent(t, env, ns, "waits", `persistentVolumeClaim "late" (phase Pending) is not bound to a PersistentVolume yet`)
	// The event and the status are written apart, so the status may come a moment later.
	waitPod(t, env, ns, "waits", "Pending, its container ContainerCreating", 30*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodPending && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ContainerCreating"
	})

	if _, err := classes.Create(ctx, keep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := waitBound(t, env, ns, "late")
	t.Cleanup(func() {
		_ = env.Client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
	dir := filepath.Join(env.DataDir, datadir.SharedVolumesDir, pv.Spec.CSI.VolumeHandle)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := waitPod(t, env, ns, "waits", "running once its claim is bound", 150*time.Second, running)
	if r := writeFile(t, p.Status.PodIP, "/data/kept", "kept"); r.Error != "" {
		t.Fatalf("writing: %s", r.Error)
	}

	// A volume that points at the host is not served.
	hostPV := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "host-" + ns},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: "host"},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}},
		},
	}
	if _, err := env.Client.CoreV1().PersistentVolumes().Create(ctx, hostPV, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().PersistentVolumes().Delete(context.Background(), hostPV.Name, metav1.DeleteOptions{})
	})
	hostClaim := newClaim("host", "", corev1.ReadWriteOnce)
	hostClaim.Spec.StorageClassName, hostClaim.Spec.VolumeName = ptr.To(""), hostPV.Name
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, hostClaim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, env, ns, "host")
	createPod(t, env, ns, claimPod(env, t, "host", "host", false))
	waitEvent(t, env, ns, "host", "not served by this node: it serves PersistentVolumes of the CSI driver "+storage.DriverName)

	// Retain: the claim and the pod go, the volume is Released, its directory stays.
	for _, name := range []string{"waits", "host"} {
		if err := env.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retained volume Released", 120*time.Second, func(ctx context.Context) (bool, error) {
		got, err := env.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Phase == corev1.VolumeReleased, fmt.Errorf("phase %s", got.Status.Phase)
	})
	time.Sleep(2 * time.Second) // the provisioner has seen it Released
	if b, err := os.ReadFile(filepath.Join(dir, "kept")); err != nil || string(b) != "kept" {
		t.Errorf("a Retain volume's data after its claim went: %q, %v", b, err)
	}
}

// TestKnativeServiceMountsAClaim: config-features' kubernetes.podspec-persistent-volume-claim
// refuses a claim in a Revision while disabled, naming the field, and once enabled the
// revision's pods mount it.
func TestKnativeServiceMountsAClaim(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()

	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newClaim("site", storage.ClassName, corev1.ReadWriteMany), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := waitBound(t, env, ns, "site")
	dir := filepath.Join(env.DataDir, datadir.SharedVolumesDir, pv.Spec.CSI.VolumeHandle)
	if err := os.WriteFile(filepath.Join(dir, "index.txt"), []byte("from the claim"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := imageService(env, t, ns, "site", "files")
	svc.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "site", MountPath: "/site"}}
	svc.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "site", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "site"}}}}

	if err := setConfig(t, env, config.FeaturesConfigName, map[string]string{"kubernetes.podspec-persistent-volume-claim": "disabled"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Service refused while the flag is disabled", 30*time.Second, func(ctx context.Context) (bool, error) {
		err := env.Ctrl.Create(ctx, svc.DeepCopy())
		if err == nil {
			_ = env.Ctrl.Delete(ctx, svc.DeepCopy())
			return false, errors.New("accepted")
		}
		return strings.Contains(err.Error(), "spec.template.spec.volumes[0].persistentVolumeClaim"), err
	})

	if err := setConfig(t, env, config.FeaturesConfigName, map[string]string{
		"kubernetes.podspec-persistent-volume-claim": "enabled",
		"kubernetes.podspec-persistent-volume-write": "enabled",
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Service accepted once the flag is enabled", 30*time.Second, func(ctx context.Context) (bool, error) {
		err := env.Ctrl.Create(ctx, svc.DeepCopy())
		return err == nil, err
	})
	got := waitServiceReady(t, env, ns, "site")
	var d appsv1.Deployment
	if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: got.Status.LatestReadyRevisionName + "-deployment"}, &d); err != nil {
		t.Fatal(err)
	}
	if v := d.Spec.Template.Spec.Volumes; len(v) == 0 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "site" {
		t.Errorf("the revision's Deployment volumes: %+v; want the claim", v)
	}
	if r := fileCall(t, env.GatewayAddr, got.Status.URL.Host, "/site/index.txt", nil); r.Body != "from the claim" {
		t.Errorf("the service reads its claim: %+v", r)
	}
}

// TestSharedStorageRefusesWhatItCannotProvision: a class parameter the provisioner does not
// know, and a block claim, leave the claim Pending with a ProvisioningFailed event naming the
// field, and no directory is made.
func TestSharedStorageRefusesWhatItCannotProvision(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	bad := storage.MakeClass(false)
	bad.Name = "gantry-bad-" + ns
	bad.Parameters = map[string]string{"basePath": "/etc"}
	if _, err := env.Client.StorageV1().StorageClasses().Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.StorageV1().StorageClasses().Delete(context.Background(), bad.Name, metav1.DeleteOptions{})
	})
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, newClaim("param", bad.Name, corev1.ReadWriteMany), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	block := newClaim("block", storage.ClassName, corev1.ReadWriteOnce)
	block.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, block, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, env, ns, "param", "parameters.basePath: not supported by "+storage.DriverName)
	waitEvent(t, env, ns, "block", "spec.volumeMode: Block is not supported")
	for _, name := range []string{"param", "block"} {
		pvc, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" {
			t.Errorf("claim %s: phase %s, volume %q; want Pending and none", name, pvc.Status.Phase, pvc.Spec.VolumeName)
		}
		if _, err := os.Stat(filepath.Join(env.DataDir, datadir.SharedVolumesDir, storage.VolumeName(string(pvc.UID)))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("claim %s: a directory was made: %v", name, err)
		}
	}
}
