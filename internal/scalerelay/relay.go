package scalerelay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Bounds of the relay.
const (
	// maxPending bounds the revisions whose load waits for the next batch; the loads of
	// more are dropped (and counted) until it goes.
	maxPending = 10000
	// sendInterval is how often the loads go to the leader: the activator measures them
	// every second.
	sendInterval = time.Second
	// sendTimeout bounds one batch; a batch that fails is dropped (the next second's load
	// replaces it).
	sendTimeout = 2 * time.Second
	// attemptTimeout bounds one try of a wake-up; retryInterval spaces the tries while the
	// caller's deadline allows (the leader may be changing).
	attemptTimeout = 5 * time.Second
	retryInterval  = 250 * time.Millisecond
	// leaderTTL is how long the leader read from its Lease is used before it is read again;
	// a failed call reads it again at once.
	leaderTTL = 5 * time.Second
	// warnEvery rate-limits the warnings about failed batches.
	warnEvery = time.Minute
)

// RelayOptions configure a Relay.
type RelayOptions struct {
	// Local is this server's autoscaler, called while this server leads.
	Local Local
	// Elected is closed once this server leads.
	Elected <-chan struct{}
	// Client reads the leader's Lease, LeaseNamespace/LeaseName.
	Client         kubernetes.Interface
	LeaseNamespace string
	LeaseName      string
	// TLS is the client's TLS configuration: the cluster CA as the root, and a certificate
	// the endpoint accepts.
	TLS    *tls.Config
	Logger *slog.Logger
	// Registerer receives gantry_autoscaler_relay_requests_total and
	// gantry_autoscaler_relay_dropped_total; nil registers them nowhere.
	Registerer prometheus.Registerer
}

// Relay is the activator's Scaler and Reporter on a server of a cluster: it hands wake-ups
// and loads to the leader's autoscaler, in-process on the leader, over HTTPS elsewhere. It is
// a lifecycle part: Start sends the loads until ctx ends.
type Relay struct {
	opts RelayOptions
	log  *slog.Logger
	http *http.Client

	mu      sync.Mutex
	pending map[types.NamespacedName]Stat
	dropped atomic.Int64

	leaderMu   sync.Mutex
	leaderURL  string
	leaderRead time.Time

	lastWarn atomic.Int64

	requests *prometheus.CounterVec
	dropCnt  prometheus.Counter
}

// NewRelay returns a Relay.
func NewRelay(opts RelayOptions) (*Relay, error) {
	if opts.Local == nil || opts.Elected == nil || opts.Client == nil || opts.LeaseName == "" || opts.TLS == nil {
		return nil, errors.New("autoscaler relay: the autoscaler, the election, a client, the leader's Lease and TLS are needed")
	}
	if opts.LeaseNamespace == "" {
		opts.LeaseNamespace = metav1.NamespaceSystem
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConfig := opts.TLS.Clone()
	tlsConfig.NextProtos = []string{"http/1.1"}
	r := &Relay{
		opts: opts,
		log:  opts.Logger.With("component", "autoscaler-relay"),
		http: &http.Client{Transport: &http.Transport{
			TLSClientConfig:       tlsConfig,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
			TLSHandshakeTimeout:   attemptTimeout,
			ResponseHeaderTimeout: wakeTimeout + time.Second,
		}},
		pending: map[types.NamespacedName]Stat{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gantry_autoscaler_relay_requests_total",
			Help: "Calls of this server's activator to the serving leader's autoscaler endpoint, by kind (scale_from_zero, stats) and result (ok, error); on the leader none.",
		}, []string{"kind", "result"}),
		dropCnt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gantry_autoscaler_relay_dropped_total",
			Help: "Revisions' loads dropped because the batch for the serving leader was full.",
		}),
	}
	if opts.Registerer != nil {
		if err := errors.Join(opts.Registerer.Register(r.requests), opts.Registerer.Register(r.dropCnt)); err != nil {
			return nil, fmt.Errorf("autoscaler relay: metrics: %w", err)
		}
	}
	return r, nil
}

func (r *Relay) count(kind string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.requests.WithLabelValues(kind, result).Inc()
}

func (r *Relay) elected() bool {
	select {
	case <-r.opts.Elected:
		return true
	default:
		return false
	}
}

// ScaleFromZero asks the leader's autoscaler for a first pod of the revision, trying again
// until ctx ends while the leader cannot be reached (it may be changing).
func (r *Relay) ScaleFromZero(ctx context.Context, namespace, revision string) error {
	var last error
	for {
		if r.elected() {
			return r.opts.Local.ScaleFromZero(ctx, namespace, revision)
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := r.post(actx, ScaleFromZeroPath, WakeUp{Namespace: namespace, Revision: revision})
		cancel()
		r.count("scale_from_zero", err)
		if err == nil {
			return nil
		}
		last = err
		r.forgetLeader()
		select {
		case <-ctx.Done():
			return fmt.Errorf("asking the serving leader to wake %s/%s: %w", namespace, revision, last)
		case <-time.After(retryInterval):
		}
	}
}

// Report takes the activator's load of a revision for the last second: on the leader it goes
// to the autoscaler at once, elsewhere into the next batch (the newest load of a revision
// wins).
func (r *Relay) Report(namespace, name string, now time.Time, concurrency, rps float64) {
	if r.elected() {
		r.opts.Local.Report(namespace, name, now, concurrency, rps)
		return
	}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[key]; !ok && len(r.pending) >= maxPending {
		r.dropped.Add(1)
		r.dropCnt.Inc()
		return
	}
	r.pending[key] = Stat{Namespace: namespace, Revision: name, Concurrency: concurrency, RPS: rps}
}

// Dropped is how many loads were dropped because the batch was full.
func (r *Relay) Dropped() int64 { return r.dropped.Load() }

// Start sends the batches of loads every sendInterval until ctx ends.
func (r *Relay) Start(ctx context.Context) error {
	t := time.NewTicker(sendInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// flush sends the pending loads.
func (r *Relay) flush(ctx context.Context) {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return
	}
	batch := make([]Stat, 0, len(r.pending))
	for _, st := range r.pending {
		batch = append(batch, st)
	}
	clear(r.pending)
	r.mu.Unlock()
	if r.elected() {
		now := time.Now()
		for _, st := range batch {
			r.opts.Local.Report(st.Namespace, st.Revision, now, st.Concurrency, st.RPS)
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	err := r.post(sctx, StatsPath, batch)
	r.count("stats", err)
	if err != nil {
		r.forgetLeader()
		if ctx.Err() == nil {
			r.warn("sending the activator's loads to the serving leader", "revisions", len(batch), "err", err)
		}
	}
}

func (r *Relay) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	if last := r.lastWarn.Load(); now-last < int64(warnEvery) || !r.lastWarn.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn(msg, args...)
}

// post sends body as JSON to the leader's endpoint at path.
func (r *Relay) post(ctx context.Context, path string, body any) error {
	base, err := r.leader(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(http.MaxBytesReader(nil, resp.Body, 512))
		_ = resp.Body.Close()
		return fmt.Errorf("%s%s: %s: %s", base, path, resp.Status, bytes.TrimSpace(msg.Bytes()))
	}
	drain(resp.Body)
	return nil
}

// leader is the URL of the leader's endpoint, from the holder of the serving leader's Lease.
func (r *Relay) leader(ctx context.Context) (string, error) {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	if r.leaderURL != "" && time.Since(r.leaderRead) < leaderTTL {
		return r.leaderURL, nil
	}
	l, err := r.opts.Client.CoordinationV1().Leases(r.opts.LeaseNamespace).Get(ctx, r.opts.LeaseName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the serving leader's Lease %s/%s: %w", r.opts.LeaseNamespace, r.opts.LeaseName, err)
	}
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	u, ok := EndpointOf(holder)
	if !ok {
		return "", fmt.Errorf("the serving leader's Lease %s/%s names no autoscaler endpoint (holder %q)", r.opts.LeaseNamespace, r.opts.LeaseName, holder)
	}
	r.leaderURL, r.leaderRead = u, time.Now()
	return u, nil
}

func (r *Relay) forgetLeader() {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	r.leaderURL = ""
}
