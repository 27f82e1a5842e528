package integration

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/metering"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// meteredPod is a pod the test's ServerlessProfile selects (label metering=yes), with
// requests (cpu, memory) or none. It runs test/images/failing, which exits after delay.
func meteredPod(name, image, cpu, memory string, delay time.Duration) *corev1.Pod {
	c := corev1.Container{Name: "app", Image: image, Env: []corev1.EnvVar{{Name: "DELAY", Value: delay.String()}}}
	if cpu != "" {
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}
	}
	pod := podWith(name, c)
	pod.Labels = map[string]string{"metering": "yes"}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	return pod
}

// meteringProfile creates a ServerlessProfile that selects the pods labelled metering=yes in
// ns, waits for it to be Active, and deletes it after the test.
func meteringProfile(t *testing.T, env *testenv.Env, ns string) string {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	gvr := v1alpha1.SchemeGroupVersion.WithResource("serverlessprofiles")
	name := ns
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(),
		"kind":       "ServerlessProfile",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{"selectors": []any{
			map[string]any{"namespace": ns, "labels": map[string]any{"metering": "yes"}},
		}},
	}}
	if _, err := dyn.Resource(gvr).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ServerlessProfile: %v", err)
	}
	t.Cleanup(func() { _ = dyn.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	waitFor(t, "ServerlessProfile "+name+" Active", time.Minute, func(ctx context.Context) (bool, error) {
		got, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
		return phase == string(v1alpha1.PhaseActive), fmt.Errorf("phase %q", phase)
	})
	return name
}

// TestMeteringRecordsPods: pods a ServerlessProfile selects are metered, a pod it does not is
// not; a pod that runs 10 s is billed a minute, one that runs 90 s its
// 90-odd seconds, each at its provisioned size, from status.startTime to its container's end;
// a pod deleted while it runs is closed when it goes; the cost is the hand computation and the
// Prometheus counters say the same.
func TestMeteringRecordsPods(t *testing.T) {
	testenv.RequireNode(t)
	env := testenv.Get(t)
	if env.Server.Metering == nil {
		t.Fatal("the server runs no metering")
	}
	ns := newNamespace(t, env.Client)
	profile := meteringProfile(t, env, ns)
	image := env.Image(t, "failing")
	ctx := context.Background()

	// Sized by admission: no requests → 0.25vCPU 0.5GB; 1 CPU and 1 GiB + 256 MiB → 1vCPU 2GB;
	// 0.5 CPU and 512 MiB + 256 MiB → 0.5vCPU 1GB.
	short := meteredPod("short", image, "", "", 10*time.Second)
	long := meteredPod("long", image, "1", "1Gi", 90*time.Second)
	deleted := meteredPod("deleted", image, "500m", "512Mi", time.Hour)
	plain := podWith("plain", corev1.Container{Name: "app", Image: image, Env: []corev1.EnvVar{{Name: "DELAY", Value: "5s"}}})
	plain.Spec.RestartPolicy = corev1.RestartPolicyNever
	for _, p := range []*corev1.Pod{short, long, deleted, plain} {
		createPod(t, env, ns, p)
	}
	waitPod(t, env, ns, "deleted", "running", time.Minute, running)
	time.Sleep(3 * time.Second)
	deleteAt := time.Now()
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, "deleted", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)}); err != nil {
		t.Fatal(err)
	}
	ended := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	}
	shortPod := waitPod(t, env, ns, "short", "ended", time.Minute, ended)
	longPod := waitPod(t, env, ns, "long", "ended", 3*time.Minute, ended)
	waitPod(t, env, ns, "plain", "ended", time.Minute, ended)

	store, err := metering.OpenStoreReadOnly(ctx, filepath.Join(env.DataDir, metering.DBPath))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	byPod := map[string]metering.Record{}
	waitFor(t, "three closed usage records", 30*time.Second, func(ctx context.Context) (bool, error) {
		recs, err := store.Records(ctx, time.Time{}, ns)
		if err != nil {
			return false, err
		}
		byPod = map[string]metering.Record{}
		for _, r := range recs {
			byPod[r.Pod] = r
		}
		for _, name := range []string{"short", "long", "deleted"} {
			if r, ok := byPod[name]; !ok || r.Open() {
				return false, nil
			}
		}
		return true, nil
	})
	if _, ok := byPod["plain"]; ok || len(byPod) != 3 {
		t.Errorf("records = %+v, want only the three serverless pods", byPod)
	}

	// Each record runs from the pod's startTime to its container's end.
	check := func(name string, pod *corev1.Pod, size metering.Size) metering.Record {
		t.Helper()
		r := byPod[name]
		if r.Size != size || r.Profile != profile || r.OwnerKind != "Pod" || r.OwnerName != name || r.UID != string(pod.UID) {
			t.Errorf("%s: record %+v, want size %+v, profile %s, owner Pod %s (annotations %v)", name, r, size, profile, name, pod.Annotations)
		}
		if !r.Start.Equal(pod.Status.StartTime.Time) || !r.End.Equal(metering.EndOf(pod, time.Time{})) {
			t.Errorf("%s: record from %v to %v, want the pod's start %v to its container's end %v", name, r.Start, r.End, pod.Status.StartTime, metering.EndOf(pod, time.Time{}))
		}
		return r
	}
	s := check("short", shortPod, metering.Size{MilliCPU: 250, MemoryMiB: 512, StorageMiB: 20 << 10})
	l := check("long", longPod, metering.Size{MilliCPU: 1000, MemoryMiB: 2048, StorageMiB: 20 << 10})
	sSecs, lSecs := metering.BilledSeconds(s.Start, s.End), metering.BilledSeconds(l.Start, l.End)
	if sSecs != 60 {
		t.Errorf("short: billed %d s, want the 60 s minimum (it ran %v)", sSecs, s.End.Sub(s.Start))
	}
	if lSecs < 90 || lSecs > 100 {
		t.Errorf("long: billed %d s, want about 90 (it ran %v)", lSecs, l.End.Sub(l.Start))
	}
	d := byPod["deleted"]
	if d.End.Before(deleteAt) || d.End.After(deleteAt.Add(20*time.Second)) || d.End.Sub(d.Start) < 3*time.Second {
		t.Errorf("deleted: record from %v to %v, want it to end after its deletion at %v, within 20 s", d.Start, d.End, deleteAt)
	}

	// The cost by hand at the default rates: vCPU and GB for the billed seconds (20 GB of
	// storage is included).
	rates := metering.DefaultRates()
	want := (0.25*60*0.04048+0.5*60*0.004445)/3600 +
		(1*float64(lSecs)*0.04048+2*float64(lSecs)*0.004445)/3600
	now := time.Now()
	rep := metering.Summarize([]metering.Record{s, l}, rates, time.Time{}, now, metering.ByNamespace)
	if len(rep.Rows) != 1 || math.Abs(rep.Rows[0].Cost-want) > 1e-12 {
		t.Errorf("cost = %+v, want %v", rep.Rows, want)
	}
	t.Logf("short %d s, long %d s: $%.8f", sSecs, lSecs, want)

	// The counters hold the billed vCPU-seconds and GB-seconds of the closed records.
	dSecs := metering.BilledSeconds(d.Start, d.End)
	wantVCPU := 0.25*60 + 1*float64(lSecs) + 0.5*float64(dSecs)
	wantGB := (0.5*60 + 2*float64(lSecs) + 1*float64(dSecs)) * (1 << 30)
	families, err := env.Server.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == ns {
					got[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	// A heartbeat that falls between a pod's end and the moment the API shows it may count up
	// to that moment, a second or two past the billed end: allow 2 s of each pod's size.
	tolVCPU, tolGB := 2*(0.25+1+0.5), 2*(0.5+2+1)*float64(1<<30)
	if v := got["gantry_serverless_vcpu_seconds_total"]; v < wantVCPU-1e-6 || v > wantVCPU+tolVCPU {
		t.Errorf("vCPU-seconds counter of %s = %v, want %v", ns, v, wantVCPU)
	}
	// The counter adds each heartbeat's share in float64: at 3e11 byte-seconds its rounding
	// is a few bytes, so the floor is relative.
	if v := got["gantry_serverless_memory_byte_seconds_total"]; v < wantGB*(1-1e-9) || v > wantGB+tolGB {
		t.Errorf("memory byte-seconds counter of %s = %v, want %v", ns, v, wantGB)
	}
	// The names and units pass Prometheus's linter, as the rest of /metrics does.
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gantry_serverless_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	if got["gantry_serverless_metered_pods"] != 0 {
		t.Errorf("metered pods of %s = %v, want none open", ns, got["gantry_serverless_metered_pods"])
	}
}

// TestMeteringRates: a bad config-metering value is refused naming the key; a good one is in
// force at once, in the database gantry usage reads its rates from.
func TestMeteringRates(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	cms := env.Client.CoreV1().ConfigMaps(config.Namespace)
	var cm *corev1.ConfigMap
	waitFor(t, "config-metering with its _example", 30*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		cm, err = cms.Get(ctx, config.MeteringConfigName, metav1.GetOptions{})
		return err == nil && cm.Data[config.ExampleKey] != "", err
	})
	bad := cm.DeepCopy()
	bad.Data["gb-hour"] = "cheap"
	if _, err := cms.Update(ctx, bad, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), `config-metering: gb-hour: "cheap" is not a number`) {
		t.Fatalf("update with gb-hour: cheap = %v, want it refused naming the key", err)
	}
	good := cm.DeepCopy()
	good.Data["vcpu-hour"] = "0.5"
	if _, err := cms.Update(ctx, good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cur, err := cms.Get(ctx, config.MeteringConfigName, metav1.GetOptions{}); err == nil {
			delete(cur.Data, "vcpu-hour")
			_, _ = cms.Update(ctx, cur, metav1.UpdateOptions{})
		}
	})
	store, err := metering.OpenStoreReadOnly(ctx, filepath.Join(env.DataDir, metering.DBPath))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	want := metering.DefaultRates()
	want.VCPUHour = 0.5
	waitFor(t, "the new vCPU rate in the usage database", 30*time.Second, func(ctx context.Context) (bool, error) {
		r, err := store.Rates(ctx)
		return r == want, fmt.Errorf("rates %+v, %w", r, err)
	})
}
