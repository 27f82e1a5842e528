package sizing

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func res(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func container(requests, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}
}

func pod(containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: containers}}
}

// TestWholeMenu: for every size of the menu, a pod asking for exactly that size less the
// overhead gets it, and a pod asking for one MiB more gets the next size that holds it.
func TestWholeMenu(t *testing.T) {
	cfg := config.NewServerless()
	type size struct{ cpu, mem int64 }
	var all []size
	for _, row := range cfg.Menu {
		for _, m := range row.MemoryMiB {
			all = append(all, size{row.MilliCPU, m})
		}
	}
	if len(all) != 3+4+7+13+23+12+12 {
		t.Fatalf("the menu has %d sizes, want Fargate's 74", len(all))
	}
	next := func(cpu, mem int64) (size, bool) {
		for _, s := range all {
			if s.cpu >= cpu && s.mem >= mem {
				return s, true
			}
		}
		return size{}, false
	}
	for _, s := range all {
		exact := fmt.Sprintf("%dMi", s.mem-256)
		t.Run(sv1alpha1.Capacity{MilliCPU: s.cpu, MemoryMiB: s.mem}.String(), func(t *testing.T) {
			got, err := ForPod(cfg, pod(container(res("cpu", fmt.Sprintf("%dm", s.cpu), "memory", exact), nil)))
			if err != nil || got.Capacity != (sv1alpha1.Capacity{MilliCPU: s.cpu, MemoryMiB: s.mem}) {
				t.Errorf("cpu %dm memory %s: got %v, %v; want %v", s.cpu, exact, got.Capacity, err, sv1alpha1.Capacity{MilliCPU: s.cpu, MemoryMiB: s.mem})
			}
			more := fmt.Sprintf("%dMi", s.mem-256+1)
			want, fits := next(s.cpu, s.mem+1)
			got, err = ForPod(cfg, pod(container(res("cpu", fmt.Sprintf("%dm", s.cpu), "memory", more), nil)))
			switch {
			case !fits && err == nil:
				t.Errorf("cpu %dm memory %s: got %v, want no size", s.cpu, more, got.Capacity)
			case fits && (err != nil || got.Capacity != sv1alpha1.Capacity{MilliCPU: want.cpu, MemoryMiB: want.mem}):
				t.Errorf("cpu %dm memory %s: got %v, %v; want %+v", s.cpu, more, got.Capacity, err, want)
			}
		})
	}
}

func TestForPod(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := container(res("cpu", "1", "memory", "1Gi"), nil)
	sidecar.RestartPolicy = &always
	tests := []struct {
		name    string
		pod     *corev1.Pod
		want    string
		storage string
	}{
		{"no requests", pod(container(nil, nil)), "0.25vCPU 0.5GB", "20Gi"},
		{"no containers' resources at all", pod(), "0.25vCPU 0.5GB", "20Gi"},
		{"1 vCPU + 8 GB: the overhead pushes it to 2 vCPU", pod(container(res("cpu", "1", "memory", "8Gi"), nil)), "2vCPU 9GB", "20Gi"},
		{"the overhead alone", pod(container(res("memory", "256Mi"), nil)), "0.25vCPU 0.5GB", "20Gi"},
		{"the overhead and one MiB", pod(container(res("memory", "257Mi"), nil)), "0.25vCPU 1GB", "20Gi"},
		{"cpu rounds up to the row", pod(container(res("cpu", "300m"), nil)), "0.5vCPU 1GB", "20Gi"},
		{"containers add up", pod(container(res("cpu", "250m", "memory", "1Gi"), nil), container(res("cpu", "500m", "memory", "1Gi"), nil)), "1vCPU 3GB", "20Gi"},
		{"limits stand in for requests", pod(container(nil, res("cpu", "2", "memory", "4Gi"))), "2vCPU 5GB", "20Gi"},
		{"requests win over limits", pod(container(res("cpu", "250m", "memory", "200Mi"), res("cpu", "2", "memory", "4Gi"))), "0.25vCPU 0.5GB", "20Gi"},
		{"a larger init container sets the size", &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{container(res("cpu", "4", "memory", "2Gi"), nil)},
			Containers:     []corev1.Container{container(res("cpu", "1", "memory", "3Gi"), nil)},
		}}, "4vCPU 8GB", "20Gi"},
		{"a sidecar runs beside the containers", &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar},
			Containers:     []corev1.Container{container(res("cpu", "1", "memory", "1Gi"), nil)},
		}}, "2vCPU 4GB", "20Gi"},
		{"small storage gets the default", pod(container(res("ephemeral-storage", "1Gi"), nil)), "0.25vCPU 0.5GB", "20Gi"},
		{"storage: requests + 10% + 5Gi", pod(container(res("ephemeral-storage", "50Gi"), nil), container(res("ephemeral-storage", "50Gi"), nil)), "0.25vCPU 0.5GB", "115Gi"},
		{"storage rounds up to a MiB", pod(container(res("ephemeral-storage", "20G"), nil)), "0.25vCPU 0.5GB", "26101Mi"},
		{"storage at the maximum", pod(container(res("ephemeral-storage", "158254Mi"), nil)), "0.25vCPU 0.5GB", "175Gi"},
		{"the largest size", pod(container(res("cpu", "16", "memory", "119.75Gi"), nil)), "16vCPU 120GB", "20Gi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ForPod(nil, tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if got.Capacity.String() != tc.want || got.EphemeralStorage() != tc.storage {
				t.Errorf("got %s, %s; want %s, %s", got.Capacity, got.EphemeralStorage(), tc.want, tc.storage)
			}
		})
	}
}

func TestForPodRefuses(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"too much cpu", pod(container(res("cpu", "17"), nil)), []string{"spec.containers[*].resources.requests: cpu 17 and memory 0", "the largest is 16vCPU 120GB"}},
		{"too much memory", pod(container(res("memory", "120Gi"), nil)), []string{"memory 120Gi (+ 256Mi for the node) fit no serverless size"}},
		{"too much memory for its vCPU row and every larger", pod(container(res("cpu", "16", "memory", "200Gi"), nil)), []string{"cpu 16 and memory 200Gi"}},
		{"too much storage", pod(container(res("ephemeral-storage", "160Gi"), nil)), []string{"spec.containers[*].resources.requests.ephemeral-storage: 160Gi needs 181Gi", "more than the 175Gi"}},
		{"both", pod(container(res("cpu", "32", "ephemeral-storage", "1Ti"), nil)), []string{"cpu 32", "ephemeral-storage: 1Ti"}},
		{"absurd storage does not overflow", pod(container(res("ephemeral-storage", "7Ei"), nil)), []string{"ephemeral-storage: 7Ei"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ForPod(nil, tc.pod)
			if err == nil {
				t.Fatalf("got %s, want an error", got.Capacity)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestConfiguredMenu: a small machine's menu sizes small pods.
func TestConfiguredMenu(t *testing.T) {
	cfg, err := config.NewServerlessFromMap(map[string]string{"menu": "0.1: 0.125, 0.25\n0.5: 0.5", "memory-overhead": "64Mi", "ephemeral-storage-default": "1Gi", "ephemeral-storage-max": "8Gi"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
		err  string
	}{
		{pod(container(nil, nil)), "0.1vCPU 0.125GB 1Gi", ""},
		{pod(container(res("cpu", "100m", "memory", "100Mi"), nil)), "0.1vCPU 0.25GB 1Gi", ""},
		{pod(container(res("cpu", "200m", "ephemeral-storage", "1Gi"), nil)), "0.5vCPU 0.5GB 6247Mi", ""},
		{pod(container(res("cpu", "1"), nil)), "", "the largest is 0.5vCPU 0.5GB"},
		{pod(container(res("ephemeral-storage", "3Gi"), nil)), "", "more than the 8Gi"},
	} {
		got, err := ForPod(cfg, tc.pod)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, %v; want an error saying %q", got, err, tc.err)
			}
			continue
		}
		if err != nil || got.Capacity.String()+" "+got.EphemeralStorage() != tc.want {
			t.Errorf("got %s %s, %v; want %s", got.Capacity, got.EphemeralStorage(), err, tc.want)
		}
	}
}
