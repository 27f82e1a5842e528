package activator

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// A revision's new pod is probed, as Knative's activator probes the pods its endpoints do not
// yet show ready: its queue-proxy answers Knative's probe header with its readiness, which
// passes once the user container's probe does. A pod that passes takes requests at once,
// before its Ready condition is written and its EndpointSlice follows (some tens of
// milliseconds, and a second when the EndpointSlice controller finds its cache behind and
// backs off). Probes run every probeFastInterval for probeFastFor, then every probeInterval
// until probeFor; each is bounded by probeTimeout.
const (
	probeFastInterval = 10 * time.Millisecond
	probeFastFor      = 2 * time.Second
	probeInterval     = 100 * time.Millisecond
	probeFor          = 30 * time.Second
	probeTimeout      = 500 * time.Millisecond
)

// probeRun is one address's probing; cancel ends it.
type probeRun struct{ cancel context.CancelFunc }

// newProbeClient is the client of the probes: one kept connection per pod, through dial.
func newProbeClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: probeTimeout}).DialContext
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         dial,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     10 * time.Second,
		DisableCompression:  true,
	}}
}

// usable are the addresses of the revision's pods that take requests: those the slices show
// ready, and those not shown ready yet whose queue-proxy has answered a probe ready. It
// starts probing each pending address that is neither; an address once shown ready and no
// longer (a pod that fails readiness or drains) is the slices' alone to bring back. What
// left the slices is forgotten, and its probe stopped.
func (a *Activator) usable(namespace, name string, st *revisionState, ready, pending []string) []string {
	st.probeMu.Lock()
	defer st.probeMu.Unlock()
	if st.shownReady == nil {
		st.shownReady, st.probed, st.probing = map[string]bool{}, map[string]bool{}, map[string]*probeRun{}
	}
	live := make(map[string]bool, len(ready)+len(pending))
	out := append([]string(nil), ready...)
	for _, addr := range ready {
		live[addr] = true
		st.shownReady[addr] = true
		st.forgetProbeLocked(addr)
	}
	for _, addr := range pending {
		live[addr] = true
		switch {
		case st.shownReady[addr]:
			st.forgetProbeLocked(addr)
		case st.probed[addr]:
			out = append(out, addr)
		case st.probing[addr] == nil:
			ctx, cancel := context.WithTimeout(context.Background(), probeFor)
			run := &probeRun{cancel: cancel}
			st.probing[addr] = run
			go a.probePod(ctx, namespace, name, st, addr, run)
		}
	}
	for addr := range st.shownReady {
		if !live[addr] {
			delete(st.shownReady, addr)
		}
	}
	for addr := range st.probed {
		if !live[addr] {
			delete(st.probed, addr)
		}
	}
	for addr := range st.probing {
		if !live[addr] {
			st.forgetProbeLocked(addr)
		}
	}
	return out
}

// forgetProbeLocked stops addr's probe and forgets its result.
func (st *revisionState) forgetProbeLocked(addr string) {
	if run := st.probing[addr]; run != nil {
		run.cancel()
		delete(st.probing, addr)
	}
	delete(st.probed, addr)
}

// stopProbes stops every probe of the revision (it was deleted).
func (st *revisionState) stopProbes() {
	st.probeMu.Lock()
	defer st.probeMu.Unlock()
	for addr := range st.probing {
		st.forgetProbeLocked(addr)
	}
}

// probePod probes addr until it answers ready or ctx ends, and on a pass records it and
// refreshes the revision's pods.
func (a *Activator) probePod(ctx context.Context, namespace, name string, st *revisionState, addr string, run *probeRun) {
	defer run.cancel()
	start := time.Now()
	for {
		if a.probeOnce(ctx, addr) {
			st.probeMu.Lock()
			current := st.probing[addr] == run
			if current {
				delete(st.probing, addr)
				st.probed[addr] = true
			}
			st.probeMu.Unlock()
			if current {
				a.refresh(context.WithoutCancel(ctx), namespace, name)
			}
			return
		}
		wait := probeInterval
		if time.Since(start) < probeFastFor {
			wait = probeFastInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			st.probeMu.Lock()
			if st.probing[addr] == run {
				delete(st.probing, addr)
			}
			st.probeMu.Unlock()
			return
		case <-t.C:
		}
	}
}

// probeOnce asks the queue-proxy at addr whether its pod is ready.
func (a *Activator) probeOnce(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false
	}
	req.Header.Set(contract.ProbeHeader, contract.ProbeValue)
	resp, err := a.probes.Do(req)
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	return err == nil && resp.StatusCode == http.StatusOK && string(body) == contract.ProbeValue
}
