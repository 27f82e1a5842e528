package activator

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// probedPod is a queue-proxy stand-in: it answers Knative's probe header with its readiness
// (ready once readyAfter probes have failed, never when readyAfter < 0) and other requests
// with "awake".
type probedPod struct {
	*httptest.Server
	probes, served atomic.Int64
}

func newProbedPod(t *testing.T, readyAfter int64) *probedPod {
	p := &probedPod{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(contract.ProbeHeader) == contract.ProbeValue {
			if n := p.probes.Add(1); readyAfter < 0 || n <= readyAfter {
				http.Error(w, "user container not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, contract.ProbeValue)
			return
		}
		p.served.Add(1)
		fmt.Fprint(w, "awake")
	}))
	t.Cleanup(p.Close)
	return p
}

// setEndpoint makes the revision's one slice show addr with the given conditions.
func setEndpoint(t *testing.T, a *Activator, rev, addr string, ready, terminating bool) {
	t.Helper()
	s := slice(rev, addr)
	s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(ready), Terminating: ptr.To(terminating)}
	cur := &discoveryv1.EndpointSlice{}
	ctx := context.Background()
	if err := a.opts.Client.Get(ctx, client.ObjectKeyFromObject(s), cur); err == nil {
		s.ResourceVersion = cur.ResourceVersion
		if err := a.opts.Client.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	} else if err := a.opts.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	a.refresh(ctx, ns, rev)
}

func TestAHeldRequestGoesToANewPodOnceItsProbePasses(t *testing.T) {
	pod := newProbedPod(t, 3)
	a, _, done := heldAtZero(t, "p-1", 0)
	// The pod appears, not ready in its slice; the slice never changes.
	setEndpoint(t, a, "p-1", pod.Listener.Addr().String(), false, false)
	select {
	case got := <-done:
		if got != "awake" {
			t.Errorf("held request got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not released to the pod whose probe passed")
	}
	if n := pod.probes.Load(); n != 4 {
		t.Errorf("%d probes, want 4 (three failed, then the pass; none after)", n)
	}
}

func TestPodsNotShownReadyTakeRequestsOnlyOnceProbedReady(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision("q-1", 0, corev1.ContainerPort{ContainerPort: 8080})).Build()
	a := New(Options{Client: c})
	st, err := a.state(context.Background(), ns, "q-1")
	if err != nil {
		t.Fatal(err)
	}
	pods := func() int { return st.th.podCount() }
	waitPods := func(what string, want int) {
		t.Helper()
		poll.Until(t, what, 5*time.Second, func(context.Context) (bool, error) {
			return pods() == want, fmt.Errorf("%d pods", pods())
		})
	}

	// A pod whose queue-proxy never answers ready takes nothing; its probes go on.
	never := newProbedPod(t, -1)
	setEndpoint(t, a, "q-1", never.Listener.Addr().String(), false, false)
	poll.Until(t, "probes of the unready pod", 5*time.Second, func(context.Context) (bool, error) {
		return never.probes.Load() >= 3, nil
	})
	if n := pods(); n != 0 {
		t.Fatalf("%d pods with one that never answered ready, want 0", n)
	}
	// Gone from the slice: its probes stop.
	ready := newProbedPod(t, 0)
	setEndpoint(t, a, "q-1", ready.Listener.Addr().String(), false, false)
	waitPods("the new pod probed ready", 1)
	stopped := never.probes.Load()
	time.Sleep(100 * time.Millisecond)
	if n := never.probes.Load(); n > stopped+1 {
		t.Errorf("the pod that left the slice was probed %d more times", n-stopped)
	}

	// Shown ready, then not: the slice decides, though its probe would pass.
	setEndpoint(t, a, "q-1", ready.Listener.Addr().String(), true, false)
	waitPods("the pod shown ready", 1)
	before := ready.probes.Load()
	setEndpoint(t, a, "q-1", ready.Listener.Addr().String(), false, false)
	waitPods("the pod no longer shown ready", 0)
	time.Sleep(50 * time.Millisecond)
	if n := ready.probes.Load(); n != before {
		t.Errorf("a pod once shown ready was probed again (%d probes)", n-before)
	}

	// A terminating endpoint is never probed.
	term := newProbedPod(t, 0)
	setEndpoint(t, a, "q-1", term.Listener.Addr().String(), false, true)
	time.Sleep(50 * time.Millisecond)
	if n := term.probes.Load(); n != 0 || pods() != 0 {
		t.Errorf("terminating endpoint: %d probes, %d pods; want none", n, pods())
	}
}
