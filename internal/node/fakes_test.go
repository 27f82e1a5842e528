package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// fakeSandboxes is an in-memory Sandboxes: containers run until told to exit.
type fakeSandboxes struct {
	mu         sync.Mutex
	clock      clock.PassiveClock
	sandboxes  map[string]*sandbox.Sandbox
	containers map[string]*sandbox.ContainerStatus // by sandbox ID/name
	// exitOnTerm lists the containers that exit (143) when they get SIGTERM.
	exitOnTerm map[string]bool
	// execCode is what exec (probes) returns.
	execCode int
	usage    int64
	calls    []string
	// statusReads counts ContainerStatus calls.
	statusReads int
	// With pids, running containers have process IDs whose exits can be watched (watch).
	pids     bool
	lastPid  int
	watchers map[int]func()
}

func newFakeSandboxes(clk clock.PassiveClock) *fakeSandboxes {
	return &fakeSandboxes{clock: clk, sandboxes: map[string]*sandbox.Sandbox{},
		containers: map[string]*sandbox.ContainerStatus{}, exitOnTerm: map[string]bool{}, watchers: map[int]func(){}}
}

// watch is Node.watch for the fake's processes.
func (f *fakeSandboxes) watch(_ context.Context, pid int, exited func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pids {
		return false
	}
	f.watchers[pid] = exited
	return true
}

func (f *fakeSandboxes) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the calls so far, and forgets them.
func (f *fakeSandboxes) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// exit ends a running container with code.
func (f *fakeSandboxes) exit(id, name string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exitLocked(id, name, code)
}

func (f *fakeSandboxes) exitLocked(id, name string, code int) {
	st := f.containers[id+"/"+name]
	if st == nil || !st.Running {
		return
	}
	if exited := f.watchers[st.Pid]; exited != nil {
		delete(f.watchers, st.Pid)
		exited()
	}
	st.Running, st.Pid = false, 0
	st.ExitCode, st.FinishedAt = code, f.clock.Now()
	st.Reason = sandbox.ReasonError
	if code == 0 {
		st.Reason = sandbox.ReasonCompleted
	}
}

func (f *fakeSandboxes) CreateSandbox(_ context.Context, spec sandbox.PodSpec) (*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create sandbox")
	if sb, ok := f.sandboxes[spec.ID]; ok {
		return sb, nil
	}
	sb := &sandbox.Sandbox{Spec: spec, ID: spec.ID, IP: net.IPv4(10, 1, 0, 2), CreatedAt: f.clock.Now()}
	f.sandboxes[spec.ID] = sb
	return sb, nil
}

func (f *fakeSandboxes) RemoveSandbox(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove sandbox")
	delete(f.sandboxes, id)
	for k := range f.containers {
		if filepath.Dir(k) == id {
			delete(f.containers, k)
		}
	}
	return nil
}

func (f *fakeSandboxes) Sandboxes(context.Context) ([]sandbox.SandboxInfo, error) { return nil, nil }

func (f *fakeSandboxes) VolumeDir(id, name string) (string, error) { return "/volumes/" + name, nil }

func (f *fakeSandboxes) StorageUsage(string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("storage usage")
	return f.usage, nil
}

func (f *fakeSandboxes) ReleaseStorage(string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("release storage")
	f.usage = 0
	return nil
}

func (f *fakeSandboxes) RotateLogs(int64, int) error { return nil }

func (f *fakeSandboxes) StartContainer(_ context.Context, id string, c sandbox.ContainerSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start %s", c.Name)
	st := f.containers[id+"/"+c.Name]
	if st == nil {
		st = &sandbox.ContainerStatus{Name: c.Name}
		f.containers[id+"/"+c.Name] = st
	} else if !st.Running {
		st.RestartCount++
	}
	*st = sandbox.ContainerStatus{Name: c.Name, Running: true, StartedAt: f.clock.Now(), RestartCount: st.RestartCount}
	if f.pids {
		f.lastPid++
		st.Pid = f.lastPid
	}
	return nil
}

func (f *fakeSandboxes) StartContainers(ctx context.Context, id string, cs []sandbox.ContainerSpec) []error {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	f.mu.Lock()
	f.record("start together %s", strings.Join(names, ","))
	f.mu.Unlock()
	errs := make([]error, len(cs))
	for i, c := range cs {
		errs[i] = f.StartContainer(ctx, id, c)
	}
	return errs
}

func (f *fakeSandboxes) ContainerStatus(_ context.Context, id, name string) (sandbox.ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusReads++
	st := f.containers[id+"/"+name]
	if st == nil {
		return sandbox.ContainerStatus{}, sandbox.ErrNotFound
	}
	return *st, nil
}

func (f *fakeSandboxes) SignalContainer(_ context.Context, id, name string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("signal %s %s", name, sig)
	if f.exitOnTerm[name] && sig == syscall.SIGTERM {
		f.exitLocked(id, name, 143)
	}
	return nil
}

func (f *fakeSandboxes) StopContainer(_ context.Context, id, name string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop %s %s", name, grace)
	f.exitLocked(id, name, 137)
	return nil
}

func (f *fakeSandboxes) Exec(context.Context, string, string, []string, io.Reader, io.Writer, io.Writer, bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.execCode, nil
}

func (f *fakeSandboxes) LogPath(id, name string) string { return "" }

// fakeImages pulls every image at once.
type fakeImages struct{}

func (fakeImages) Pull(_ context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, DigestRef: ref + "@sha256:0123", Layers: []string{"/layers/0"}}, nil
}

func (fakeImages) GC(context.Context, []string) (image.GCResult, error) { return image.GCResult{}, nil }

// testNode is a Node on fakes: an API server of client-go's fake clientset (whose updates of
// pods go through JSON, as a real API server's do), fake sandboxes and images, a fake clock.
func testNode(t *testing.T, objs ...runtime.Object) (*Node, *fake.Clientset, *fakeSandboxes, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC))
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if pod, ok := a.(k8stesting.UpdateAction).GetObject().(*corev1.Pod); ok {
			roundTrip(t, pod)
		}
		return false, nil, nil
	})
	sb := newFakeSandboxes(clk)
	n := &Node{
		opts: Options{Info: NodeInfo{Name: "gantry", InternalIP: net.IPv4(192, 168, 1, 2)}, Client: cs,
			Sandboxes: sb, Images: fakeImages{}, StateDir: t.TempDir(), QueueProxyBinary: "/gantry"},
		log:        slog.New(slog.DiscardHandler),
		clock:      clk,
		emptyLayer: "/empty",
		watch:      sb.watch,
		recorder:   &record.FakeRecorder{},
		cms:        newObjectCache(clk, configMapGetter(cs)),
		secrets:    newObjectCache(clk, secretGetter(cs)),
	}
	return n, cs, sb, clk
}

// roundTrip passes pod through JSON, as an API server stores it (times to the second).
func roundTrip(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	*pod = *out
}

// statusWrites counts the writes of pod status the clientset received.
func statusWrites(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "pods" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func testPod(containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-1", Generation: 1},
		Spec: corev1.PodSpec{
			NodeName: "gantry", Containers: containers, RestartPolicy: corev1.RestartPolicyAlways,
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.NewTime(time.Date(2026, 11, 28, 9, 59, 59, 0, time.UTC))}},
		},
	}
}
