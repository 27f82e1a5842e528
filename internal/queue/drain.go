package queue

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// drainer is the outermost handler of the serving port. It answers Knative's probe header
// with the pod's readiness, counts the requests in flight (hijacked ones too, which
// http.Server.Shutdown does not wait for), and while draining remembers when the last
// request arrived and asks each client to close its connection after the response, so
// clients move to other pods without a connection being closed under them.
type drainer struct {
	next      http.Handler
	readiness *Readiness

	epoch       time.Time
	inflight    atomic.Int64
	draining    atomic.Bool
	lastArrival atomic.Int64 // nanoseconds since epoch, kept only while draining
}

func newDrainer(next http.Handler, readiness *Readiness) *drainer {
	return &drainer{next: next, readiness: readiness, epoch: time.Now()}
}

func (d *drainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if v, ok := r.Header[contract.ProbeHeader]; ok {
		if len(v) == 0 || v[0] != contract.ProbeValue {
			http.Error(w, "queue-proxy: unexpected "+contract.ProbeHeader+" value", http.StatusBadRequest)
			return
		}
		d.readiness.ServeHTTP(w, r)
		return
	}
	d.inflight.Add(1)
	defer d.inflight.Add(-1)
	if d.draining.Load() {
		d.lastArrival.Store(int64(time.Since(d.epoch)))
		w.Header().Set("Connection", "close")
	}
	d.next.ServeHTTP(w, r)
}

// startDrain fails readiness and starts the quiet period at now.
func (d *drainer) startDrain() {
	d.readiness.Drain()
	d.lastArrival.Store(int64(time.Since(d.epoch)))
	d.draining.Store(true)
}

// waitQuiet returns once no request has arrived for quiet, or when ctx ends.
func (d *drainer) waitQuiet(ctx context.Context, quiet time.Duration) {
	for {
		since := time.Since(d.epoch) - time.Duration(d.lastArrival.Load())
		if since >= quiet {
			return
		}
		t := time.NewTimer(quiet - since)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// waitIdle returns nil once no request is in flight, or ctx's error when ctx ends first.
func (d *drainer) waitIdle(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for d.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
