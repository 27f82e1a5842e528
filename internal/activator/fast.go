package activator

import (
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// TryServe is ServeRevision for the gateway's fast path (internal/h1proxy): when a ready pod
// of the revision has a free slot now and no request waits for one, it fills f to send the
// request there, with the same headers, load and metrics as ServeRevision, and returns true.
// Otherwise (a revision not seen yet, no free pod, h2c, tracing on) it returns false and the
// request goes to ServeRevision, which waits.
func (a *Activator) TryServe(namespace, name string, f *h1proxy.Forward) bool {
	if a.opts.Tracer != nil {
		return false
	}
	a.mu.Lock()
	st, ok := a.revs[types.NamespacedName{Namespace: namespace, Name: name}]
	a.mu.Unlock()
	if !ok || st.h2c {
		return false
	}
	p, release, ok := st.th.tryAcquire()
	if !ok {
		return false
	}
	began := time.Now()
	proxied := !st.serve.Load()
	if proxied {
		st.load.begin(began)
		f.Set(contract.ProxyHeader, contract.ActivatorProxy)
	}
	f.Addr = p.addr
	f.ErrorBody = "activator: pod: "
	f.Done = func(status int) {
		release()
		end := time.Now()
		if proxied {
			st.load.end(end)
		}
		if status == 0 {
			status = http.StatusOK // as ServeRevision records a client that left
		}
		a.metrics.observe(namespace, st.service, st.configuration, name, status, end.Sub(began))
	}
	return true
}
