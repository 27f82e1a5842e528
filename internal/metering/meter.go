package metering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// DefaultHeartbeat is how often the Meter marks running pods as seen and advances its
// counters.
const DefaultHeartbeat = 15 * time.Second

// Options configure a Meter.
type Options struct {
	// Client reads pods and the config-metering ConfigMap.
	Client kubernetes.Interface
	// DBPath is the usage database (<data-dir>/DBPath in gantry server).
	DBPath string
	// Registerer receives the counters; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now); Heartbeat the period of DefaultHeartbeat.
	Now       func() time.Time
	Heartbeat time.Duration
}

// Meter keeps a usage record for every serverless pod the API shows: it is inserted when the
// pod's status.startTime appears (the node sets it before it pulls the pod's images) and
// closed at the pod's end: its containers' last finish when it goes terminal, or when it is
// deleted. On start it reconciles the open records against the API: a pod still there stays
// open (its sandbox ran on while the server was down), a pod gone is closed at the last time
// a server saw it run.
type Meter struct {
	opts  Options
	log   *slog.Logger
	ready chan struct{}

	events chan event

	vcpuSeconds       *prometheus.CounterVec
	memoryByteSeconds *prometheus.CounterVec
	running           *prometheus.GaugeVec
}

// event is one thing for the writer: a pod observed (rec), a reconcile of the open records
// against the pods the API lists, or new rates.
type event struct {
	rec       *Record
	deleted   bool // rec's pod is gone: forget it after recording
	reconcile func(uid string) (bool, error)
	rates     *Rates
	done      chan struct{}
}

// New builds a Meter and registers its counters.
func New(opts Options) (*Meter, error) {
	if opts.Client == nil || opts.DBPath == "" {
		return nil, errors.New("metering: a client and a database path are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// The counters add up differences between this clock's readings and times from the API
	// and the database, which are wall-clock times. Go takes the difference of two readings
	// of time.Now from its monotonic clock instead, and the two clocks part when the wall
	// clock is set, so a pod's counters would end a little off its billed figure. Readings
	// without the monotonic part make every difference a wall-clock one, so they add up to
	// the billed end exactly.
	clock := opts.Now
	opts.Now = func() time.Time { return clock().Round(0) }
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	m := &Meter{
		opts:   opts,
		log:    opts.Logger.With("component", "metering"),
		ready:  make(chan struct{}),
		events: make(chan event, 1024),
		vcpuSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gantry_serverless_vcpu_seconds_total",
			Help: "Provisioned vCPU-seconds of serverless pods, as billed (rounded up, one-minute minimum once a pod ends).",
		}, []string{"namespace", "profile"}),
		// Memory in bytes, Prometheus's base unit: GB-seconds are this / 2^30.
		memoryByteSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gantry_serverless_memory_byte_seconds_total",
			Help: "Provisioned memory of serverless pods in byte-seconds (GB-seconds times 2^30), as billed (rounded up, one-minute minimum once a pod ends).",
		}, []string{"namespace", "profile"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gantry_serverless_metered_pods",
			Help: "Serverless pods whose usage record is open.",
		}, []string{"namespace", "profile"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{m.vcpuSeconds, m.memoryByteSeconds, m.running} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("metering: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Ready is closed once the open records are reconciled with the API.
func (m *Meter) Ready() <-chan struct{} { return m.ready }

// Start meters until ctx ends.
func (m *Meter) Start(ctx context.Context) error {
	store, err := OpenStore(ctx, m.opts.DBPath)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			m.log.Warn("closing the usage database", "err", err)
		}
	}()
	if err := m.ensureConfigMap(ctx); err != nil {
		return err
	}

	pods := informers.NewSharedInformerFactory(m.opts.Client, 0)
	podInformer := pods.Core().V1().Pods().Informer()
	// Only metadata and status are read: the spec is not kept in memory.
	if err := podInformer.SetTransform(trimPod); err != nil {
		return err
	}
	reg, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.observe(ctx, obj, false) },
		UpdateFunc: func(_, obj any) { m.observe(ctx, obj, false) },
		DeleteFunc: func(obj any) { m.observe(ctx, obj, true) },
	})
	if err != nil {
		return err
	}
	cms := informers.NewSharedInformerFactoryWithOptions(m.opts.Client, 0, informers.WithNamespace(config.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		}))
	cmInformer := cms.Core().V1().ConfigMaps().Informer()
	if _, err := cmInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.configure(ctx, obj) },
		UpdateFunc: func(_, obj any) { m.configure(ctx, obj) },
		DeleteFunc: func(any) { m.configure(ctx, nil) },
	}); err != nil {
		return err
	}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		m.write(ctx, store)
	}()
	pods.Start(ctx.Done())
	cms.Start(ctx.Done())
	defer func() {
		pods.Shutdown()
		cms.Shutdown()
		<-writerDone
	}()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced, cmInformer.HasSynced) {
		return nil // ctx ended
	}
	// Every pod the API lists is queued; what is open in the database without its pod ended
	// while no server watched.
	uids := map[string]bool{}
	for _, obj := range podInformer.GetIndexer().List() {
		if p, ok := obj.(*corev1.Pod); ok {
			uids[string(p.UID)] = true
		}
	}
	done := make(chan struct{})
	m.send(ctx, event{reconcile: func(uid string) (bool, error) { return uids[uid], nil }, done: done})
	select {
	case <-done:
	case <-ctx.Done():
		return nil
	}
	close(m.ready)
	<-ctx.Done()
	return nil
}

// send queues ev for the writer.
func (m *Meter) send(ctx context.Context, ev event) {
	select {
	case m.events <- ev:
	case <-ctx.Done():
	}
}

// observe queues what a pod event says of a metered pod.
func (m *Meter) observe(ctx context.Context, obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	rec, ok, err := FromPod(pod)
	if err != nil {
		m.log.Warn("not metered", "err", err)
		return
	}
	if !ok {
		return
	}
	if deleted && rec.Open() {
		rec.End = EndOfDeleted(pod, m.opts.Now())
	}
	m.send(ctx, event{rec: &rec, deleted: deleted})
}

// configure applies the config-metering ConfigMap (nil: deleted, the defaults).
func (m *Meter) configure(ctx context.Context, obj any) {
	var data map[string]string
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		data = cm.Data
	}
	r, err := ParseRates(data)
	if err != nil {
		m.log.Warn("rates refused; keeping the rates in force", "err", err)
		return
	}
	m.send(ctx, event{rates: &r})
}

// ensureConfigMap creates config-metering with its documentation when it does not exist.
func (m *Meter) ensureConfigMap(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: config.Namespace}}
	if _, err := m.opts.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", config.Namespace, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: ConfigMapName, Namespace: config.Namespace,
			Labels: map[string]string{"app.kubernetes.io/part-of": "gantry", "app.kubernetes.io/managed-by": "gantry"},
		},
		Data: map[string]string{config.ExampleKey: Example()},
	}
	if _, err := m.opts.Client.CoreV1().ConfigMaps(config.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ConfigMap %s/%s: %w", config.Namespace, ConfigMapName, err)
	}
	return nil
}

// tracked is an open record the counters advance for: counted up to accrued.
type tracked struct {
	rec     Record
	accrued time.Time
}

// write is the one writer: it applies the events in order, and at every heartbeat marks the
// open records seen and advances the counters.
func (m *Meter) write(ctx context.Context, store *Store) {
	open := map[string]*tracked{}
	closed := map[string]bool{} // pods whose record is closed, until their pod is gone
	tick := time.NewTicker(m.opts.Heartbeat)
	defer tick.Stop()
	// A stop (not a crash) records when the pods were last seen: the next start closes a
	// pod that vanishes meanwhile at that time.
	defer func() {
		if err := store.Touch(context.WithoutCancel(ctx), m.opts.Now()); err != nil {
			m.log.Warn("marking running pods", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now := m.opts.Now()
			for _, t := range open {
				m.count(t.rec, now.Sub(t.accrued))
				t.accrued = now
			}
			if err := store.Touch(ctx, now); err != nil {
				m.log.Warn("marking running pods", "err", err)
			}
		case ev := <-m.events:
			switch {
			case ev.rates != nil:
				if err := store.SetRates(ctx, *ev.rates); err != nil {
					m.log.Warn("storing rates", "err", err)
				}
			case ev.reconcile != nil:
				m.reconcile(ctx, store, open, ev.reconcile)
			case ev.rec != nil:
				m.apply(ctx, store, open, closed, *ev.rec, ev.deleted)
			}
			if ev.done != nil {
				close(ev.done)
			}
		}
	}
}

// apply records one observation of a pod.
func (m *Meter) apply(ctx context.Context, store *Store, open map[string]*tracked, closed map[string]bool, rec Record, deleted bool) {
	defer func() {
		if deleted {
			delete(closed, rec.UID)
		}
	}()
	// Nothing new: a running pod already open, or a pod already closed.
	if _, ok := open[rec.UID]; (ok && rec.Open()) || closed[rec.UID] {
		return
	}
	ch, err := store.Observe(ctx, rec, m.opts.Now())
	if err != nil {
		m.log.Warn("recording usage", "err", err)
		return
	}
	switch {
	case ch.Inserted && ch.Closed:
		m.count(rec, rec.End.Sub(rec.Start))
		m.countRest(rec, rec.End)
	case ch.Inserted:
		open[rec.UID] = &tracked{rec: rec, accrued: rec.Start}
		m.running.WithLabelValues(rec.Namespace, rec.Profile).Inc()
	case ch.Closed:
		accrued := maxTime(rec.Start, ch.LastSeen)
		if t, ok := open[rec.UID]; ok {
			accrued = t.accrued
			delete(open, rec.UID)
			m.running.WithLabelValues(rec.Namespace, rec.Profile).Dec()
		}
		m.count(rec, rec.End.Sub(accrued))
		m.countRest(rec, maxTime(rec.End, accrued))
	case ch.Ended:
		// Closed before (by a deletion or a reconcile): counted once, never again.
	case rec.Open():
		// Open in the database since an earlier server, which counted up to its last look.
		if _, ok := open[rec.UID]; !ok {
			open[rec.UID] = &tracked{rec: rec, accrued: maxTime(rec.Start, ch.LastSeen)}
			m.running.WithLabelValues(rec.Namespace, rec.Profile).Inc()
		}
	}
	if !rec.Open() || ch.Closed || ch.Ended {
		closed[rec.UID] = true
	}
	if deleted {
		delete(closed, rec.UID)
	}
	m.log.Debug("usage recorded", "pod", rec.Namespace+"/"+rec.Pod, "uid", rec.UID, "inserted", ch.Inserted, "closed", ch.Closed)
}

// reconcile closes the open records whose pod the API no longer has, at the last time a server
// saw them run.
func (m *Meter) reconcile(ctx context.Context, store *Store, open map[string]*tracked, exists func(string) (bool, error)) {
	recs, err := store.OpenRecords(ctx)
	if err != nil {
		m.log.Warn("reconciling usage records", "err", err)
		return
	}
	for _, r := range recs {
		if ok, err := exists(r.UID); err != nil || ok {
			continue
		}
		end := maxTime(r.Start, r.LastSeen)
		if _, err := store.CloseAt(ctx, r.UID, end); err != nil {
			m.log.Warn("reconciling usage records", "err", err)
			continue
		}
		if t, ok := open[r.UID]; ok {
			delete(open, r.UID)
			m.running.WithLabelValues(r.Namespace, r.Profile).Dec()
			m.count(r.Record, end.Sub(t.accrued))
		}
		r.End = end
		m.countRest(r.Record, end)
		m.log.Info("closed the usage record of a pod gone while no server watched", "pod", r.Namespace+"/"+r.Pod, "uid", r.UID, "end", end)
	}
}

// count adds d of rec's size to the counters.
func (m *Meter) count(rec Record, d time.Duration) {
	if d <= 0 {
		return
	}
	s := d.Seconds()
	m.vcpuSeconds.WithLabelValues(rec.Namespace, rec.Profile).Add(rec.Size.VCPU() * s)
	m.memoryByteSeconds.WithLabelValues(rec.Namespace, rec.Profile).Add(float64(rec.Size.MemoryMiB<<20) * s)
}

// countRest adds what billing adds to a closed record beyond its end, counted up to upTo: the
// rounding up and the minimum, so a pod's counters end at its billed figure.
func (m *Meter) countRest(rec Record, upTo time.Time) {
	billedEnd := rec.Start.Add(time.Duration(BilledSeconds(rec.Start, rec.End)) * time.Second)
	m.count(rec, billedEnd.Sub(upTo))
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// trimPod keeps what metering reads of a pod: its metadata and status.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	pod.ManagedFields = nil
	pod.Spec = corev1.PodSpec{}
	pod.Status.Conditions = nil
	return pod, nil
}
