package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/dns/resolvconf"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// worker runs one pod: its sandbox, containers, probes and status. It is the I/O half of the
// pod's lifecycle: it observes the sandbox, asks the pure decisions (decide.go, probe.go,
// terminate.go, status.go) what to do, does it, and sleeps until the next thing is due
// (nextWake), the pod changes, or a container exits.
type worker struct {
	n       *Node
	updates chan *corev1.Pod
	wake    chan struct{} // a container exited
	pod     *corev1.Pod
	// lookAll says an exit or a change of the pod woke the worker: it looks at every
	// container. A timer wakes it for probes and deadlines, and it looks then only at the
	// containers whose exits it cannot watch, or has not looked at for resyncPeriod.
	lookAll bool
	// evictMsg, set by the node under disk pressure, evicts the pod at the next sync.
	evictMsg atomic.Pointer[string]
	// phase is the pod's phase after the last sync (gantry_node_pods); the scrape reads it.
	phase atomic.Value // corev1.PodPhase
	// takenAt is when the node took the pod; startTimed says its start has been observed
	// (gantry_node_sandbox_start_duration_seconds), or will not be: a container was adopted.
	takenAt    time.Time
	startTimed bool
	// setupTook is the time from takenAt until the sandbox and volumes were ready.
	setupTook time.Duration
	podState
}

// podState is everything a worker knows of its pod between syncs; the decisions read it.
type podState struct {
	sb         *sandbox.Sandbox
	volumes    map[string]string
	socketDir  string // mounted at contract.SocketDir in the queue-proxy; "" for none
	containers map[string]*ctr
	failed     string // reason the pod failed for good (refused, evicted)
	failedMsg  string
	// setupRetry is when creating the sandbox or its volumes is tried again after a failure.
	setupRetry   time.Time
	setupBackoff time.Duration
	// storageAt is when ephemeral storage was last measured, storageUsed what it was, and
	// storageDue when it is measured next.
	storageAt, storageDue     time.Time
	storageUsed, storageLimit int64
	// stopping is the pod's termination once it is being deleted.
	stopping *stopPlan
	// retry is when a status write, sandbox removal or pod deletion that failed is tried again.
	retry time.Time
	// reported says the API has the status of the worker's state as it was after the last
	// write or comparison.
	reported bool
}

// ctr is what the worker knows of one container.
type ctr struct {
	img        *image.Image
	started    bool // a run has been started (or adopted) in this sandbox
	waiting    *corev1.ContainerStateWaiting
	status     sandbox.ContainerStatus // the sandbox's latest observation
	observedAt time.Time
	watchedPid int // the process whose exit wakes the worker
	lastTerm   *corev1.ContainerStateTerminated
	backoff    time.Duration
	retryAt    time.Time // when a start, pull or restart is tried (again)
	killAt     time.Time // a failed probe sent SIGTERM: SIGKILL then
	ready      bool
	everReady  bool // the container has been ready since it last started
	startedOK  bool // the startup probe passed (or there is none)
	probes     map[probeKind]*probeState
	done       bool // exited and will not restart
}

func newWorker(n *Node, pod *corev1.Pod) *worker {
	w := &worker{n: n, updates: make(chan *corev1.Pod, 1), wake: make(chan struct{}, 1), pod: pod, lookAll: true,
		takenAt: n.clock.Now(), podState: podState{containers: map[string]*ctr{}}}
	w.phase.Store(pod.Status.Phase)
	return w
}

// reportedPhase is the pod's phase after the worker's last sync.
func (w *worker) reportedPhase() corev1.PodPhase {
	p, _ := w.phase.Load().(corev1.PodPhase)
	return p
}

// update hands the worker the newest version of its pod, replacing one not yet taken.
func (w *worker) update(pod *corev1.Pod) {
	select {
	case <-w.updates:
	default:
	}
	w.updates <- pod
}

// poke wakes the worker; it never blocks.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	// The worker's exit watches end with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clk := w.n.clock
	timer := clk.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-w.updates:
			if !older(p, w.pod) {
				w.pod = p
			}
			w.lookAll = true
		case <-w.wake:
			w.lookAll = true
		case <-timer.C():
		}
		if done := w.sync(ctx); done {
			return
		}
		now := clk.Now()
		timer.Stop()
		timer.Reset(w.sleep(w.pod, now))
	}
}

// older reports whether p is an older version of the pod than cur, as their resource
// versions tell: those of one etcd grow, so an informer event that arrives after the status
// write it precedes is not taken for news. Versions that are not numbers, and a pod being
// deleted, are always taken.
func older(p, cur *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	a, err1 := strconv.ParseUint(p.ResourceVersion, 10, 64)
	b, err2 := strconv.ParseUint(cur.ResourceVersion, 10, 64)
	return err1 == nil && err2 == nil && a < b
}

func (w *worker) log() *slog.Logger { return w.n.log.With("pod", w.pod.Namespace+"/"+w.pod.Name) }

// sync converges the pod one step and reports its status; it returns true once the pod is
// gone.
func (w *worker) sync(ctx context.Context) bool {
	if w.n.metrics != nil {
		defer func() { w.phase.Store(w.pod.Status.Phase) }()
	}
	pod := w.pod
	now := w.n.clock.Now()
	if pod.DeletionTimestamp != nil {
		return w.terminate(ctx, now)
	}
	if terminal(pod) {
		// A pod that succeeded or failed stays so; its status is final.
		w.retry = time.Time{}
		return false
	}
	before := w.view(pod)
	if msg := w.evictMsg.Swap(nil); msg != nil && w.failed == "" {
		w.evict(ctx, evictDiskPressure, *msg)
	}
	if w.failed == "" {
		if fields := Unsupported(pod); len(fields) > 0 {
			w.fail(ctx, "Unsupported", refusal(fields))
		} else if msg := hostUsersRefusal(pod, w.n.opts.AllowHostUsers); msg != "" {
			w.fail(ctx, "Unsupported", msg)
		} else if msg := runtimeClassRefusal(pod); msg != "" {
			w.fail(ctx, "Unsupported", msg)
		} else if msg := serverlessRefusal(pod); msg != "" {
			w.fail(ctx, "Unsupported", msg)
		}
	}
	if w.failed == "" {
		w.converge(ctx, now)
	}
	// The status changes only with the worker's state or the pod: a sync that changed
	// neither (a probe that passed again) has nothing to compare.
	if w.lookAll || !w.retry.IsZero() || !w.reported || !before.equal(w.view(pod)) {
		w.report(ctx, now)
	}
	w.lookAll = false
	return false
}

// evict fails the pod as Evicted, counting the eviction by cause (evictStorageLimit,
// evictDiskPressure).
func (w *worker) evict(ctx context.Context, cause, msg string) {
	w.n.metrics.evicted(cause)
	w.fail(ctx, reasonEvicted, msg)
}

func (w *worker) fail(ctx context.Context, reason, msg string) {
	w.failed, w.failedMsg = reason, msg
	w.n.recorder.Event(w.pod, corev1.EventTypeWarning, reason, msg)
	if w.sb == nil {
		return
	}
	for name := range w.containers {
		_ = w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, name, 0)
	}
	if reason == reasonEvicted {
		// The pod stays, Failed, until it is deleted; its disk is given back now.
		if err := w.n.opts.Sandboxes.ReleaseStorage(w.sb.ID); err != nil {
			w.log().Warn("releasing an evicted pod's storage", "err", err)
		}
	}
}

// converge creates the sandbox and volumes, then starts, watches, probes and restarts the
// containers, init containers first, one after another.
func (w *worker) converge(ctx context.Context, now time.Time) {
	if !w.setup(ctx, now) {
		return
	}
	w.checkStorage(ctx, now)
	if w.failed != "" {
		return
	}
	pod := w.pod
	for i := range pod.Spec.InitContainers {
		if !w.syncContainer(ctx, &pod.Spec.InitContainers[i], true, now) || w.failed != "" {
			return
		}
	}
	w.startNew(ctx, now)
	for i := range pod.Spec.Containers {
		w.syncContainer(ctx, &pod.Spec.Containers[i], false, now)
		if w.failed != "" {
			return
		}
	}
	if !w.startTimed && allStarted(pod.Spec.Containers, w.containers) {
		// The clock's time, not now: the sync's pulls and starts are part of the start.
		w.startTimed = true
		took := w.n.clock.Since(w.takenAt)
		if w.n.metrics != nil {
			w.n.metrics.podStarted(took)
		}
		w.log().Debug("pod started", "took", took, "setup", w.setupTook)
	}
}

// allStarted says every one of containers has been started (or adopted) in the sandbox.
func allStarted(containers []corev1.Container, states map[string]*ctr) bool {
	for _, c := range containers {
		if s := states[c.Name]; s == nil || !s.started {
			return false
		}
	}
	return true
}

// setup creates the pod's sandbox and volumes once; it reports whether they exist.
func (w *worker) setup(ctx context.Context, now time.Time) bool {
	if w.sb != nil && w.volumes != nil {
		return true
	}
	if now.Before(w.setupRetry) {
		return false
	}
	pod := w.pod
	failed := func(reason, format string, args ...any) bool {
		w.n.recorder.Eventf(pod, corev1.EventTypeWarning, reason, format, args...)
		w.setupBackoff = nextBackoff(w.setupBackoff, 0)
		w.setupRetry = now.Add(w.setupBackoff)
		return false
	}
	if w.sb == nil {
		spec := podSpec(pod, w.n.defaultLimits())
		if w.n.opts.ClusterDNS != nil {
			spec.ResolvConf = resolvconf.ForPod(pod, w.n.opts.ClusterDNS, resolvconf.Host())
		}
		sb, err := w.n.opts.Sandboxes.CreateSandbox(ctx, spec)
		if err != nil {
			return failed("FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		}
		w.sb, w.storageLimit = sb, spec.EphemeralStorageBytes
	}
	vols, err := volumeDirs(ctx, w.n.clientFor(pod), pod, filepath.Join(w.n.opts.StateDir, "pods", string(pod.UID), "volumes"), w.n.opts.SharedVolumesDir, w.sources(),
		func(name string) (string, error) { return w.n.opts.Sandboxes.VolumeDir(w.sb.ID, name) })
	if err != nil {
		return failed("FailedMount", "%v", err)
	}
	socketDir, err := w.queueSocketDir()
	if err != nil {
		return failed("FailedMount", "the queue-proxy's socket directory: %v", err)
	}
	w.volumes, w.socketDir, w.setupBackoff, w.setupRetry = vols, socketDir, 0, time.Time{}
	w.setupTook = w.n.clock.Since(w.takenAt)
	return true
}

func (w *worker) state(name string) *ctr {
	s, ok := w.containers[name]
	if !ok {
		s = &ctr{probes: map[probeKind]*probeState{}}
		w.containers[name] = s
	}
	return s
}

// syncContainer observes container c, applies what decide says, and probes it while it
// runs. It reports whether an init container has completed.
func (w *worker) syncContainer(ctx context.Context, c *corev1.Container, init bool, now time.Time) bool {
	s := w.state(c.Name)
	if s.started && !s.done && (w.lookAll || s.watchedPid == 0 || now.Sub(s.observedAt) >= resyncPeriod) {
		w.observe(ctx, c, s, now)
	}
	switch decide(w.pod.Spec.RestartPolicy, init, s, now) {
	case actStart:
		w.start(ctx, c, s, now)
	case actBackOff:
		s.backOff(c.Name, now)
	case actKill:
		// Its exit wakes the worker, which then restarts it after its back-off.
		if err := w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, c.Name, 0); err != nil {
			w.log().Warn("killing container", "container", c.Name, "err", err)
			s.killAt = now.Add(retryPeriod)
		}
		w.observe(ctx, c, s, now)
	case actDone:
		s.done, s.ready = true, false
	case actFailPod:
		w.fail(ctx, "InitContainerFailed", fmt.Sprintf("init container %s exited with %d", c.Name, s.status.ExitCode))
		return false
	}
	if !init && s.status.Running && s.killAt.IsZero() {
		w.probe(ctx, c, s, now)
	}
	return init && s.done && s.status.ExitCode == 0
}

// start starts container c: it adopts one that already runs in the sandbox (from an earlier
// run of the node), else pulls its image if needed and starts it.
func (w *worker) start(ctx context.Context, c *corev1.Container, s *ctr, now time.Time) {
	if spec, ok := w.prepare(ctx, c, s, now); ok {
		w.started(ctx, c, s, now, w.n.opts.Sandboxes.StartContainer(ctx, w.sb.ID, spec))
	}
}

// startNew starts side by side the pod's containers that this sandbox has never run, as the
// pod's first start needs them all: the pod starts in the time of its slowest container
// rather than of all of them. Restarts are syncContainer's, one at a time.
func (w *worker) startNew(ctx context.Context, now time.Time) {
	var cs []*corev1.Container
	var specs []sandbox.ContainerSpec
	for i := range w.pod.Spec.Containers {
		c := &w.pod.Spec.Containers[i]
		s := w.state(c.Name)
		if s.started || decide(w.pod.Spec.RestartPolicy, false, s, now) != actStart {
			continue
		}
		if spec, ok := w.prepare(ctx, c, s, now); ok {
			cs, specs = append(cs, c), append(specs, spec)
		}
	}
	if len(specs) == 0 {
		return
	}
	errs := w.n.opts.Sandboxes.StartContainers(ctx, w.sb.ID, specs)
	for i, c := range cs {
		w.started(ctx, c, w.state(c.Name), now, errs[i])
	}
}

// prepare readies container c's start: it adopts c when it already runs in the sandbox
// (from an earlier run of the node), else pulls its image if needed and resolves its spec.
// It reports whether c is to be started with spec; a failure is recorded on s.
func (w *worker) prepare(ctx context.Context, c *corev1.Container, s *ctr, now time.Time) (sandbox.ContainerSpec, bool) {
	if !s.started {
		if st, err := w.n.opts.Sandboxes.ContainerStatus(ctx, w.sb.ID, c.Name); err == nil && st.Running {
			s.started, s.status, s.waiting = true, st, nil
			// Started by an earlier run of the node: the pod's start is not this run's to time.
			w.startTimed = true
			w.watch(ctx, s)
			return sandbox.ContainerSpec{}, false
		}
	}
	if s.img == nil && !contract.IsSidecar(c) {
		if msg := w.n.pullRefusal(); msg != "" {
			s.failedStart("ErrImagePull", msg, now)
			w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.Image, msg)
			return sandbox.ContainerSpec{}, false
		}
		img, err := w.n.pull(ctx, c.Image)
		if err != nil {
			reason := "ErrImagePull"
			if s.waiting != nil && (s.waiting.Reason == "ErrImagePull" || s.waiting.Reason == "ImagePullBackOff") {
				reason = "ImagePullBackOff"
			}
			s.failedStart(reason, err.Error(), now)
			w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
			return sandbox.ContainerSpec{}, false
		}
		s.img, s.backoff = img, 0
		w.n.recorder.Eventf(w.pod, corev1.EventTypeNormal, "Pulled", "Container image %q ready (%s)", c.Image, img.Digest)
	}
	spec, err := containerSpec(w.pod, c, specInput{img: s.img, volumes: w.volumes, socketDir: w.socketDir, sources: w.sources(),
		emptyLayer: w.n.emptyLayer, queueProxy: w.n.opts.QueueProxyBinary, allowUnconfined: w.n.opts.AllowUnconfinedSeccomp,
		memoryCapacity: w.n.opts.Info.MemoryBytes, limits: w.n.defaultLimits()})
	if err != nil {
		s.failedStart("CreateContainerConfigError", err.Error(), now)
		return sandbox.ContainerSpec{}, false
	}
	return spec, true
}

// started records the outcome of container c's start: err, or a container that runs.
func (w *worker) started(ctx context.Context, c *corev1.Container, s *ctr, now time.Time, err error) {
	if err != nil {
		s.failedStart("CreateContainerError", err.Error(), now)
		w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return
	}
	s.started, s.waiting, s.retryAt, s.killAt = true, nil, time.Time{}, time.Time{}
	s.probes = map[probeKind]*probeState{}
	s.ready, s.startedOK, s.everReady = false, false, false
	w.n.recorder.Eventf(w.pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	w.observe(ctx, c, s, now)
}

// observe reads the container's state from the sandbox and watches the exit of its process.
func (w *worker) observe(ctx context.Context, c *corev1.Container, s *ctr, now time.Time) {
	st, err := w.n.opts.Sandboxes.ContainerStatus(ctx, w.sb.ID, c.Name)
	if err != nil {
		return
	}
	s.observedAt = now
	if s.status.Running && !st.Running {
		w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "BackOff", "Container %s exited with code %d (%s)", c.Name, st.ExitCode, st.Reason)
		s.ready = false
	}
	s.status = st
	w.watch(ctx, s)
}

// watch makes the exit of the container's process wake the worker, once per process; a
// container whose exit cannot be watched is polled (nextWake).
func (w *worker) watch(ctx context.Context, s *ctr) {
	if !s.status.Running || s.status.Pid <= 0 {
		s.watchedPid = 0
		return
	}
	if s.watchedPid == s.status.Pid {
		return
	}
	s.watchedPid = 0
	if w.n.watch(ctx, s.status.Pid, w.poke) {
		s.watchedPid = s.status.Pid
	}
}

// probe runs the container's startup, liveness and readiness probes that are due.
func (w *worker) probe(ctx context.Context, c *corev1.Container, s *ctr, now time.Time) {
	if c.StartupProbe != nil && !s.startedOK {
		switch w.runProbe(ctx, c, s, probeStartup, c.StartupProbe, probePeriod(c.StartupProbe), now) {
		case probePassed:
			s.startedOK = true
			delete(s.probes, probeStartup)
		case probeFailed:
			w.kill(ctx, c, s, "Startup", now)
		}
		if !s.startedOK {
			s.ready = false
			return
		}
	}
	s.startedOK = true
	if c.LivenessProbe != nil && w.runProbe(ctx, c, s, probeLiveness, c.LivenessProbe, probePeriod(c.LivenessProbe), now) == probeFailed {
		w.kill(ctx, c, s, "Liveness", now)
		return
	}
	if c.ReadinessProbe == nil {
		s.ready, s.everReady = true, true
		return
	}
	interval := readinessInterval(c.ReadinessProbe, s.everReady, s.status.StartedAt, now)
	switch w.runProbe(ctx, c, s, probeReadiness, c.ReadinessProbe, interval, now) {
	case probePassed:
		if !s.everReady {
			// Ready at last: from now on at the probe's period.
			s.probes[probeReadiness].next = now.Add(probePeriod(c.ReadinessProbe))
		}
		s.ready, s.everReady = true, true
	case probeFailed:
		s.ready = false
	}
}

// runProbe runs p if it is due and applies its thresholds.
func (w *worker) runProbe(ctx context.Context, c *corev1.Container, s *ctr, kind probeKind, p *corev1.Probe, interval time.Duration, now time.Time) probeResult {
	ps, ok := s.probes[kind]
	if !ok {
		ps = newProbeState(p, s.status.StartedAt)
		s.probes[kind] = ps
	}
	if !ps.due(now) {
		return probePending
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout(p))
	defer cancel()
	pr := prober{exec: func(ctx context.Context, argv []string) (int, error) {
		return w.n.opts.Sandboxes.Exec(ctx, w.sb.ID, c.Name, argv, nil, nil, nil, false)
	}}
	ip := ""
	if w.sb.IP != nil {
		ip = w.sb.IP.String()
	}
	err := pr.check(pctx, ip, c, p)
	return ps.record(p, err == nil, now, interval)
}

// kill stops a container whose startup or liveness probe failed: SIGTERM now, SIGKILL after
// the pod's termination grace period (decide's actKill); it then restarts by the pod's
// restart policy.
func (w *worker) kill(ctx context.Context, c *corev1.Container, s *ctr, kind string, now time.Time) {
	w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed, container %s will be restarted", kind, c.Name)
	s.ready = false
	grace := time.Duration(ptr.Deref(w.pod.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
	s.killAt = now.Add(grace)
	if grace > 0 {
		if err := w.n.opts.Sandboxes.SignalContainer(ctx, w.sb.ID, c.Name, syscall.SIGTERM); err == nil {
			return
		}
	}
	s.killAt = now
	_ = w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, c.Name, 0)
}

// checkStorage measures the pod's ephemeral storage when due and evicts the pod when its
// writable layers and emptyDirs outgrow its limit.
func (w *worker) checkStorage(ctx context.Context, now time.Time) {
	if !w.storageDue.IsZero() && now.Before(w.storageDue) {
		return
	}
	used, err := w.n.opts.Sandboxes.StorageUsage(w.sb.ID)
	if err != nil {
		w.storageDue = now.Add(storagePeriod)
		return
	}
	rate := -1.0
	if dt := now.Sub(w.storageAt).Seconds(); !w.storageAt.IsZero() && dt > 0 {
		rate = float64(used-w.storageUsed) / dt
	}
	w.storageAt, w.storageUsed = now, used
	w.storageDue = now.Add(storageInterval(used, w.storageLimit, rate))
	limit := w.storageLimit
	switch {
	case used <= limit:
	case onServerlessNode(w.pod):
		w.evict(ctx, evictStorageLimit, fmt.Sprintf("Pod ephemeral local storage usage exceeds its provisioned ephemeral storage %s (%s; uses %s).",
			quantity(limit), v1alpha1.EphemeralStorageProvisionedAnnotation, quantity(used)))
	default:
		w.evict(ctx, evictStorageLimit, fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s (uses %s).",
			quantity(limit), quantity(used)))
	}
}

// report writes the pod's status when it differs from the API's: nothing is written for a
// pod whose state did not change (buildStatus keeps every time stable).
func (w *worker) report(ctx context.Context, now time.Time) {
	status := buildStatus(w.pod, &w.podState, w.n.opts.Info.InternalIP, now)
	if equality.Semantic.DeepEqual(w.pod.Status, status) {
		w.retry, w.reported = time.Time{}, true
		return
	}
	pod := w.pod.DeepCopy()
	pod.Status = status
	updated, err := w.n.clientFor(pod).CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		// A conflict or a pod gone: the informer brings the newer pod, and with it a sync.
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			w.log().Warn("updating pod status", "err", err)
			w.retry = now.Add(retryPeriod)
		}
		return
	}
	w.pod, w.retry, w.reported = updated, time.Time{}, true
}
