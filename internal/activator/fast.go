package activator

import (
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// ServeFast is ServeRevision for the gateway's fast path (internal/h1proxy): it fills f to
// send the request to a pod of the revision, with the same headers, load and metrics, taking a
// free slot at once when there is one and otherwise waiting as ServeRevision does (on the
// request's context, which ends when its client leaves); when no pod takes the request, f
// replies 404, 503 or 504 as ServeRevision would. It returns false, leaving the request to
// ServeRevision, for what it does not serve: h2c revisions, and everything while tracing.
func (a *Activator) ServeFast(r *h1proxy.Request, namespace, name string, f *h1proxy.Forward) bool {
	if a.opts.Tracer != nil {
		return false
	}
	a.mu.Lock()
	st := a.revs[types.NamespacedName{Namespace: namespace, Name: name}]
	a.mu.Unlock()
	if st == nil {
		var err error
		if st, err = a.state(r.Context(), namespace, name); err != nil {
			status, msg := stateError(namespace, name, err)
			f.Reply(status, msg+"\n")
			return true
		}
	}
	if st.h2c {
		return false
	}
	began := time.Now()
	proxied := !st.serve.Load()
	if proxied {
		st.load.begin(began)
	}
	finish := func(release func(), status int) {
		if release != nil {
			release()
		}
		end := time.Now()
		if proxied {
			st.load.end(end)
		}
		if status == 0 {
			status = http.StatusOK // as ServeRevision records a client that left
		}
		st.metrics.observe(status, end.Sub(began))
	}
	p, release, ok := st.th.tryAcquire()
	if !ok {
		var status int
		var msg string
		if p, release, status, msg = a.waitForPod(r.Context(), st, namespace, name); p == nil {
			finish(nil, status)
			if status != 0 {
				f.Reply(status, msg+"\n")
			}
			return true
		}
	}
	if proxied {
		f.Set(contract.ProxyHeader, contract.ActivatorProxy)
	} else {
		f.Drop(contract.ProxyHeader) // only the activator marks a request proxied
	}
	f.Addr = p.addr
	f.ErrorBody = "activator: pod: "
	f.Done = func(status int) { finish(release, status) }
	return true
}

// PassTarget is the pod whose queue-proxy a client connection for the revision may be passed
// to (internal/connpass), so that it serves the connection's next requests itself: a ready
// pod of a revision without a limit per pod (containerConcurrency 0, which balancing by
// connection cannot overfill, and for which the activator never holds a request while a pod
// is ready), with no request waiting, over HTTP/1.1, untraced. The queue-proxy counts those
// requests as its own for the autoscaler (not as proxied), so they are counted once in either
// mode. false otherwise.
func (a *Activator) PassTarget(namespace, name string) (string, bool) {
	if a.opts.Tracer != nil {
		return "", false
	}
	a.mu.Lock()
	st := a.revs[types.NamespacedName{Namespace: namespace, Name: name}]
	a.mu.Unlock()
	if st == nil || st.h2c {
		return "", false
	}
	return st.th.passTarget()
}

// RecordPassed counts a request that a queue-proxy served on a passed connection in the
// revision's request metrics, as if the activator had sent it.
func (a *Activator) RecordPassed(namespace, name string, status int, d time.Duration) {
	a.mu.Lock()
	st := a.revs[types.NamespacedName{Namespace: namespace, Name: name}]
	a.mu.Unlock()
	if st != nil {
		st.metrics.observe(status, d)
	}
}
