package queue

import (
	"errors"
	"net/http"
	"time"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/tracing"
)

// admission counts every request into the autoscaler's stats (proxied apart: those the
// activator sent), and with a breaker admits at most its capacity at once, queues the
// next ones and refuses the rest with 503. Waiting counts as concurrency: it is demand.
type admission struct {
	next    http.Handler
	stats   *RequestStats
	breaker *Breaker // nil: unlimited
}

func (a *admission) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isKubeletProbe(r) {
		a.next.ServeHTTP(w, r)
		return
	}
	proxied := isFromActivator(r)
	a.stats.In(time.Now(), proxied)
	defer func() { a.stats.Out(time.Now(), proxied) }()
	if a.breaker != nil {
		if err := a.breaker.Acquire(r.Context()); err != nil {
			if errors.Is(err, ErrQueueFull) {
				http.Error(w, "queue-proxy: "+err.Error(), http.StatusServiceUnavailable)
			}
			// Otherwise the request's context ended while it waited: a timeout answers for
			// itself, and a client that left hears nothing.
			return
		}
		defer a.breaker.Release()
	}
	a.next.ServeHTTP(w, r)
}

func isFromActivator(r *http.Request) bool {
	v := r.Header[contract.ProxyHeader]
	return len(v) > 0 && v[0] == contract.ActivatorProxy
}

// newHandler is the serving port's chain, outermost first: drain and probe answers,
// request metrics, timeouts, forwarded headers, stats and breaker, app metrics, the proxy.
func newHandler(q *QueueProxy, proxy http.Handler) *drainer {
	h := metricsHandler(q.metrics.app, proxy)
	h = &admission{next: h, stats: q.stats, breaker: q.breaker}
	h = forwardedHandler(h)
	h = newTimeoutHandler(h, q.cfg.Timeout, q.cfg.ResponseStartTimeout, q.cfg.IdleTimeout)
	h = metricsHandler(q.metrics.requests, h)
	h = tracingHandler(q.tracer, h)
	return newDrainer(h, q.readiness)
}

// tracingHandler records the queue-proxy's span of each request and hands the user container
// the span's trace context; with tracing off (t nil) it is next itself.
func tracingHandler(t *tracing.Tracer, next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isKubeletProbe(r) {
			next.ServeHTTP(w, r)
			return
		}
		r, span := t.StartServer(r, "queue-proxy")
		t.Inject(r.Context(), r.Header)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() { span.End(rec.code) }()
		next.ServeHTTP(rec, r)
	})
}
