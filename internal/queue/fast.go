package queue

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// fastPath routes the serving port's plain HTTP/1.1 requests (internal/h1proxy) to the user
// container with the same rules as the handler chain: forwarded headers, the autoscaler's
// stats, the breaker and its queue, timeouts and request metrics. It declines what the chain
// must see: probes, requests while draining, traced requests, and everything when the user
// container speaks h2c.
type fastPath struct {
	q      *QueueProxy
	target string
	total  time.Duration
	start  time.Duration // response start, 0 when the total comes first
}

func newFastPath(q *QueueProxy) *fastPath {
	if q.tracer != nil || q.cfg.UserProtocol == contract.UserProtocolH2C {
		return nil
	}
	f := &fastPath{q: q, target: net.JoinHostPort("127.0.0.1", strconv.Itoa(q.cfg.UserPort)),
		total: q.cfg.Timeout, start: q.cfg.ResponseStartTimeout}
	if f.total > 0 && f.start >= f.total {
		f.start = 0
	}
	return f
}

func (p *fastPath) Route(r *h1proxy.Request, f *h1proxy.Forward) bool {
	q := p.q
	if r.Has(contract.ProbeHeader) || r.Has("K-Kubelet-Probe") || isProbeAgent(r.Get("User-Agent")) || q.drainer.draining.Load() {
		return false
	}
	began := time.Now()
	proxied := r.Get(contract.ProxyHeader) == contract.ActivatorProxy
	q.drainer.inflight.Add(1)
	q.stats.In(began, proxied) // waiting for a slot counts as concurrency: it is demand
	admitted := q.breaker == nil || q.breaker.TryAcquire()
	if !admitted {
		// Wait in the breaker's queue, within the request's own bounds, as the chain does.
		ctx := r.Context()
		if deadline := h1proxy.FirstDeadline(began, p.total, p.start, q.cfg.IdleTimeout); !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		err := q.breaker.Acquire(ctx)
		switch {
		case err == nil:
			admitted = true
		case errors.Is(err, ErrQueueFull):
			f.Reply(http.StatusServiceUnavailable, "queue-proxy: "+err.Error()+"\n")
		case errors.Is(err, context.DeadlineExceeded):
			f.Reply(http.StatusGatewayTimeout, timeoutBody)
		}
		// Otherwise the client left: nobody hears an answer.
	}
	f.Done = func(status int) {
		if status == 0 {
			status = http.StatusOK // as the chain records a client that left
		}
		end := time.Now()
		d := end.Sub(began)
		if admitted {
			q.metrics.app.record(status, d)
			if q.breaker != nil {
				q.breaker.Release()
			}
		}
		q.metrics.requests.record(status, d)
		q.stats.Out(end, proxied)
		q.drainer.inflight.Add(-1)
	}
	if !admitted {
		return true
	}

	f.Addr = p.target
	if h := r.Get(contract.OriginalHostHeader); h != "" {
		f.Host = h
		f.Drop(contract.OriginalHostHeader)
	}
	xff := r.Values("X-Forwarded-For")
	if !r.Has("Forwarded") {
		first := ""
		if len(xff) > 0 {
			first = xff[0]
		}
		if fwd := forwardedFrom(first, r.Get("X-Forwarded-Host"), r.Get("X-Forwarded-Proto")); fwd != "" {
			f.Set("Forwarded", fwd)
		}
	}
	if v, ok := appendForwardedFor(xff, r.RemoteAddr); ok {
		f.Set("X-Forwarded-For", v)
	}
	f.Began = began
	f.Total, f.ResponseStart, f.Idle = p.total, p.start, q.cfg.IdleTimeout
	f.TimeoutBody = timeoutBody
	f.ErrorBody = "queue-proxy: error reaching the user container: "
	return true
}
