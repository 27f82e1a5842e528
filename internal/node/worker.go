package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// Back-off of failing containers and image pulls, as the kubelet's.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	// backoffReset: a container that ran this long without failing starts its back-off over.
	backoffReset = 10 * time.Minute
	syncPeriod   = time.Second
	// While a pod is starting, the worker looks every startPeriod, and readiness probes of a
	// container that has not been ready yet retry at that pace (as Knative probes new pods
	// aggressively), so a pod is Ready moments after its server listens.
	startPeriod    = 25 * time.Millisecond
	startWindow    = 30 * time.Second
	storagePeriod  = 10 * time.Second
	pullTimeout    = 10 * time.Minute
	defaultStorage = 20 << 30
)

// worker runs one pod: its sandbox, containers, probes and status.
type worker struct {
	n       *Node
	updates chan *corev1.Pod
	pod     *corev1.Pod

	sb          *sandbox.Sandbox
	volumes     map[string]string
	containers  map[string]*ctr
	failed      string // reason the pod failed for good (refused, evicted)
	failedMsg   string
	lastStorage time.Time
}

// ctr is what the worker knows of one container.
type ctr struct {
	img       *image.Image
	started   bool
	waiting   *corev1.ContainerStateWaiting
	status    sandbox.ContainerStatus
	lastTerm  *corev1.ContainerStateTerminated
	backoff   time.Duration
	retryAt   time.Time
	ready     bool
	everReady bool // the container has been ready since it last started
	startedOK bool // the startup probe passed (or there is none)
	probes    map[string]*probeState
	done      bool // exited and will not restart
}

type probeState struct {
	next             time.Time
	successes, fails int32
}

func newWorker(n *Node, pod *corev1.Pod) *worker {
	return &worker{n: n, updates: make(chan *corev1.Pod, 1), pod: pod, containers: map[string]*ctr{}}
}

// update hands the worker the newest version of its pod, replacing one not yet taken.
func (w *worker) update(pod *corev1.Pod) {
	select {
	case <-w.updates:
	default:
	}
	w.updates <- pod
}

func (w *worker) run(ctx context.Context) {
	began := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-w.updates:
			w.pod = p
		case <-timer.C:
		}
		if done := w.sync(ctx); done {
			return
		}
		next := syncPeriod
		if !w.ready() && time.Since(began) < startWindow {
			next = startPeriod
		}
		timer.Reset(next)
	}
}

// ready reports whether every container of the pod is ready.
func (w *worker) ready() bool {
	for _, c := range w.pod.Spec.Containers {
		if s, ok := w.containers[c.Name]; !ok || !s.ready {
			return false
		}
	}
	return true
}

func (w *worker) log() *slog.Logger { return w.n.log.With("pod", w.pod.Namespace+"/"+w.pod.Name) }

// sync converges the pod one step and reports its status; it returns true once the pod is
// gone.
func (w *worker) sync(ctx context.Context) bool {
	pod := w.pod
	if pod.DeletionTimestamp != nil {
		return w.terminate(ctx)
	}
	if w.failed == "" && pod.Status.Phase != corev1.PodFailed && pod.Status.Phase != corev1.PodSucceeded {
		if fields := Unsupported(pod); len(fields) > 0 {
			w.fail(ctx, "Unsupported", refusal(fields))
		}
	}
	if w.failed == "" && !terminal(pod) {
		w.converge(ctx)
	}
	w.report(ctx)
	return false
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
}

func (w *worker) fail(ctx context.Context, reason, msg string) {
	w.failed, w.failedMsg = reason, msg
	w.n.recorder.Event(w.pod, corev1.EventTypeWarning, reason, msg)
	w.stopAll(ctx, 0)
}

// converge creates the sandbox and volumes, then starts, watches, probes and restarts the
// containers.
func (w *worker) converge(ctx context.Context) {
	pod := w.pod
	if w.sb == nil {
		sb, err := w.n.opts.Sandboxes.CreateSandbox(ctx, w.podSpec())
		if err != nil {
			w.n.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return
		}
		w.sb = sb
	}
	if w.volumes == nil {
		vols, err := volumeDirs(ctx, w.n.opts.Client, pod, filepath.Join(w.n.opts.StateDir, "pods", string(pod.UID), "volumes"), w.sources(),
			func(name string) (string, error) { return w.n.opts.Sandboxes.VolumeDir(w.sb.ID, name) })
		if err != nil {
			w.n.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedMount", "%v", err)
			return
		}
		w.volumes = vols
	}
	for _, c := range pod.Spec.InitContainers {
		if !w.runToCompletion(ctx, c) {
			return
		}
	}
	for i := range pod.Spec.Containers {
		w.keepRunning(ctx, &pod.Spec.Containers[i])
	}
	if time.Since(w.lastStorage) > storagePeriod {
		w.lastStorage = time.Now()
		w.checkStorage(ctx)
	}
}

func (w *worker) state(name string) *ctr {
	s, ok := w.containers[name]
	if !ok {
		s = &ctr{probes: map[string]*probeState{}}
		w.containers[name] = s
	}
	return s
}

// runToCompletion runs an init container until it succeeds; it reports whether it has.
func (w *worker) runToCompletion(ctx context.Context, c corev1.Container) bool {
	s := w.state(c.Name)
	if s.done && s.status.ExitCode == 0 {
		return true
	}
	if !w.ensureStarted(ctx, &c, s) {
		return false
	}
	w.observe(ctx, &c, s)
	if s.status.Running {
		return false
	}
	if s.status.ExitCode == 0 {
		s.done = true
		return true
	}
	if w.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		w.fail(ctx, "InitContainerFailed", fmt.Sprintf("init container %s exited with %d", c.Name, s.status.ExitCode))
		return false
	}
	w.restartLater(ctx, &c, s)
	return false
}

// keepRunning starts a container and restarts it by the pod's restart policy.
func (w *worker) keepRunning(ctx context.Context, c *corev1.Container) {
	s := w.state(c.Name)
	if s.done || !w.ensureStarted(ctx, c, s) {
		return
	}
	w.observe(ctx, c, s)
	if s.status.Running {
		w.probe(ctx, c, s)
		return
	}
	s.ready = false
	policy := w.pod.Spec.RestartPolicy
	if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && s.status.ExitCode == 0) {
		s.done = true
		return
	}
	w.restartLater(ctx, c, s)
}

// ensureStarted pulls the image and starts the container once; it reports whether the
// container has been started.
func (w *worker) ensureStarted(ctx context.Context, c *corev1.Container, s *ctr) bool {
	if s.started {
		return true
	}
	if time.Now().Before(s.retryAt) {
		return false
	}
	// Re-adoption: a container of this sandbox that already runs is taken over as it is.
	if st, err := w.n.opts.Sandboxes.ContainerStatus(ctx, w.sb.ID, c.Name); err == nil && st.Running {
		s.started, s.status, s.waiting = true, st, nil
		return true
	}
	spec, err := w.containerSpec(ctx, c, s)
	if err != nil {
		return false
	}
	if err := w.n.opts.Sandboxes.StartContainer(ctx, w.sb.ID, spec); err != nil {
		s.waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}
		w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		s.retryAt = time.Now().Add(w.bump(s))
		return false
	}
	s.started, s.waiting = true, nil
	w.n.recorder.Eventf(w.pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	return true
}

func (w *worker) bump(s *ctr) time.Duration {
	if s.backoff == 0 {
		s.backoff = backoffInitial
	} else {
		s.backoff = min(2*s.backoff, backoffMax)
	}
	return s.backoff
}

// containerSpec resolves a container into what the sandbox runs: image layers, argv, env,
// user, mounts and limits. A failure is recorded as the container's waiting state.
func (w *worker) containerSpec(ctx context.Context, c *corev1.Container, s *ctr) (sandbox.ContainerSpec, error) {
	pod := w.pod
	var entrypoint, cmd, imageEnv []string
	var layers []string
	var mounts []sandbox.Mount
	uid, gid := uint32(0), uint32(0)
	workdir := c.WorkingDir
	if contract.IsSidecar(c) {
		// The queue-proxy is the gantry binary itself, bound into an empty root.
		layers = []string{w.n.emptyLayer()}
		entrypoint = []string{contract.BinaryPath}
		mounts = append(mounts, sandbox.Mount{Source: w.n.opts.Executable, Destination: contract.BinaryPath, ReadOnly: true})
		uid, gid = contract.UID, contract.UID
	} else {
		if s.img == nil {
			pctx, cancel := context.WithTimeout(ctx, pullTimeout)
			img, err := w.n.opts.Images.Pull(pctx, c.Image)
			cancel()
			if err != nil {
				reason := "ErrImagePull"
				if s.waiting != nil && (s.waiting.Reason == "ErrImagePull" || s.waiting.Reason == "ImagePullBackOff") {
					reason = "ImagePullBackOff"
				}
				s.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
				s.retryAt = time.Now().Add(w.bump(s))
				w.n.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
				return sandbox.ContainerSpec{}, err
			}
			s.img = img
			s.backoff = 0
			w.n.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulled", "Container image %q ready (%s)", c.Image, img.Digest)
		}
		layers, entrypoint, cmd, imageEnv = s.img.Layers, s.img.Config.Entrypoint, s.img.Config.Cmd, s.img.Config.Env
		if workdir == "" {
			workdir = s.img.Config.WorkingDir
		}
		uid, gid = parseUser(s.img.Config.User)
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = uint32(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup)
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = uint32(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup)
		}
	}
	env, err := Env(pod, c, imageEnv, w.sources())
	if err != nil {
		s.waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}
		s.retryAt = time.Now().Add(w.bump(s))
		return sandbox.ContainerSpec{}, err
	}
	for _, vm := range c.VolumeMounts {
		src, ok := w.volumes[vm.Name]
		if !ok {
			continue
		}
		if vm.SubPath != "" {
			src = filepath.Join(src, filepath.Clean("/"+vm.SubPath))
		}
		mounts = append(mounts, sandbox.Mount{Source: src, Destination: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return sandbox.ContainerSpec{
		Name:        c.Name,
		Layers:      layers,
		Args:        Argv(c, entrypoint, cmd, env),
		Env:         env,
		WorkingDir:  workdir,
		UID:         uid,
		GID:         gid,
		Mounts:      mounts,
		CPUMillis:   c.Resources.Limits.Cpu().MilliValue(),
		MemoryBytes: c.Resources.Limits.Memory().Value(),
	}, nil
}

// parseUser reads an image's numeric "uid[:gid]"; names resolve to root.
func parseUser(u string) (uint32, uint32) {
	us, gs, _ := strings.Cut(u, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0
	}
	gid, err := strconv.ParseUint(gs, 10, 32)
	if err != nil {
		gid = uid
	}
	return uint32(uid), uint32(gid)
}

// observe reads the container's state from the sandbox.
func (w *worker) observe(ctx context.Context, c *corev1.Container, s *ctr) {
	st, err := w.n.opts.Sandboxes.ContainerStatus(ctx, w.sb.ID, c.Name)
	if err != nil {
		return
	}
	if s.status.Running && !st.Running {
		reason := st.Reason
		w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "BackOff", "Container %s exited with code %d (%s)", c.Name, st.ExitCode, reason)
	}
	s.status = st
}

// restartLater restarts an exited container after its back-off; meanwhile it waits in
// CrashLoopBackOff, as the kubelet reports it.
func (w *worker) restartLater(ctx context.Context, c *corev1.Container, s *ctr) {
	st := s.status
	s.lastTerm = &corev1.ContainerStateTerminated{
		ExitCode: int32(st.ExitCode), Reason: st.Reason,
		StartedAt: metav1.NewTime(st.StartedAt), FinishedAt: metav1.NewTime(st.FinishedAt),
	}
	if s.retryAt.IsZero() || (s.waiting == nil) {
		if st.FinishedAt.Sub(st.StartedAt) > backoffReset {
			s.backoff = 0
		}
		s.retryAt = time.Now().Add(w.bump(s))
		s.waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container %s", s.backoff, c.Name)}
		return
	}
	if time.Now().Before(s.retryAt) {
		return
	}
	spec, err := w.containerSpec(ctx, c, s)
	if err != nil {
		return
	}
	if err := w.n.opts.Sandboxes.StartContainer(ctx, w.sb.ID, spec); err != nil {
		s.waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}
		s.retryAt = time.Now().Add(w.bump(s))
		return
	}
	s.waiting, s.retryAt = nil, time.Time{}
	s.probes = map[string]*probeState{}
	s.startedOK, s.everReady = false, false
	w.observe(ctx, c, s)
}

// probe runs the container's startup, liveness and readiness probes when they are due.
func (w *worker) probe(ctx context.Context, c *corev1.Container, s *ctr) {
	if c.StartupProbe != nil && !s.startedOK {
		switch w.runProbe(ctx, c, s, "startup", c.StartupProbe) {
		case probePassed:
			s.startedOK = true
		case probeFailed:
			w.kill(ctx, c, "Startup")
		}
		if !s.startedOK {
			s.ready = false
			return
		}
	}
	s.startedOK = true
	if c.LivenessProbe != nil && w.runProbe(ctx, c, s, "liveness", c.LivenessProbe) == probeFailed {
		w.kill(ctx, c, "Liveness")
		return
	}
	if c.ReadinessProbe == nil {
		s.ready, s.everReady = true, true
		return
	}
	switch w.runProbe(ctx, c, s, "readiness", c.ReadinessProbe) {
	case probePassed:
		s.ready, s.everReady = true, true
	case probeFailed:
		s.ready = false
	}
	if !s.everReady {
		// Until the first success, probe again at once rather than a period later.
		s.probes["readiness"].next = time.Now().Add(startPeriod)
	}
}

func (w *worker) kill(ctx context.Context, c *corev1.Container, kind string) {
	w.n.recorder.Eventf(w.pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed, container %s will be restarted", kind, c.Name)
	grace := time.Duration(ptr.Deref(w.pod.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
	_ = w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, c.Name, grace)
}

type probeResult int

const (
	probePending probeResult = iota
	probePassed
	probeFailed
)

// runProbe runs p if due and applies its thresholds.
func (w *worker) runProbe(ctx context.Context, c *corev1.Container, s *ctr, kind string, p *corev1.Probe) probeResult {
	ps, ok := s.probes[kind]
	if !ok {
		ps = &probeState{next: s.status.StartedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second)}
		s.probes[kind] = ps
	}
	if time.Now().Before(ps.next) {
		return probePending
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	ps.next = time.Now().Add(period)
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := w.check(pctx, c, p)
	cancel()
	if err == nil {
		ps.successes, ps.fails = ps.successes+1, 0
		if ps.successes >= max(p.SuccessThreshold, 1) {
			return probePassed
		}
		return probePending
	}
	ps.successes, ps.fails = 0, ps.fails+1
	if ps.fails >= max(p.FailureThreshold, 1) {
		ps.fails = 0
		return probeFailed
	}
	return probePending
}

// check performs one probe: HTTP GET and TCP from the host to the pod's address, exec in
// the container.
func (w *worker) check(ctx context.Context, c *corev1.Container, p *corev1.Probe) error {
	ip := w.sb.IP.String()
	switch {
	case p.HTTPGet != nil:
		port, err := resolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return err
		}
		scheme := strings.ToLower(string(p.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(ip, strconv.Itoa(port)), p.HTTPGet.Path), nil)
		if err != nil {
			return err
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		req.Header.Set("User-Agent", "kube-probe/1.37")
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case p.Exec != nil:
		code, err := w.n.opts.Sandboxes.Exec(ctx, w.sb.ID, c.Name, p.Exec.Command, nil, nil, nil, false)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command exited with %d", code)
		}
		return nil
	case p.GRPC != nil:
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(p.GRPC.Port))))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return errors.New("probe has no handler")
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q is not a port of container %s", p.StrVal, c.Name)
}

// checkStorage evicts the pod when its writable layers and emptyDirs outgrow its limit.
func (w *worker) checkStorage(ctx context.Context) {
	used, err := w.n.opts.Sandboxes.StorageUsage(w.sb.ID)
	if err != nil {
		return
	}
	limit := w.podSpec().EphemeralStorageBytes
	if used > limit {
		w.fail(ctx, "Evicted", fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s (uses %s).",
			quantity(limit), quantity(used)))
	}
}

// podSpec is the sandbox for the pod: its size is the sum of its containers' limits.
func (w *worker) podSpec() sandbox.PodSpec {
	pod := w.pod
	var cpu, mem, storage int64
	cpuSet, memSet := true, true
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			cpu += q.MilliValue()
		} else {
			cpuSet = false
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			mem += q.Value()
		} else {
			memSet = false
		}
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			storage += q.Value()
		}
	}
	if !cpuSet {
		cpu = 0
	}
	if !memSet {
		mem = 0
	}
	if storage == 0 {
		storage = defaultStorage
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	return sandbox.PodSpec{
		ID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Hostname: hostname,
		CPUMillis: cpu, MemoryBytes: mem, EphemeralStorageBytes: storage, Labels: pod.Labels,
	}
}

func (w *worker) stopAll(ctx context.Context, grace time.Duration) {
	if w.sb == nil {
		return
	}
	for name := range w.containers {
		_ = w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, name, grace)
	}
}

// terminate stops the containers with the pod's grace period, removes the sandbox and its
// volumes, and deletes the pod object, as the kubelet finishes a deletion.
func (w *worker) terminate(ctx context.Context) bool {
	pod := w.pod
	grace := time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30))) * time.Second
	if w.sb == nil {
		// A sandbox may exist from an earlier run of the node.
		w.sb = &sandbox.Sandbox{ID: string(pod.UID)}
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, name := range names {
		if err := w.n.opts.Sandboxes.StopContainer(ctx, w.sb.ID, name, grace); err != nil {
			w.log().Warn("stopping container", "container", name, "err", err)
		}
	}
	if err := w.n.opts.Sandboxes.RemoveSandbox(ctx, string(pod.UID)); err != nil {
		w.log().Warn("removing sandbox", "err", err)
		return false
	}
	_ = os.RemoveAll(filepath.Join(w.n.opts.StateDir, "pods", string(pod.UID)))
	err := w.n.opts.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.log().Warn("deleting pod", "err", err)
		return false
	}
	return true
}

// report writes the pod's status when it changed.
func (w *worker) report(ctx context.Context) {
	status := w.buildStatus()
	if equality.Semantic.DeepEqual(statusForCompare(w.pod.Status), statusForCompare(status)) {
		return
	}
	pod := w.pod.DeepCopy()
	pod.Status = status
	updated, err := w.n.opts.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			w.log().Warn("updating pod status", "err", err)
		}
		return
	}
	w.pod = updated
}

// statusForCompare drops the times that change on every build.
func statusForCompare(s corev1.PodStatus) corev1.PodStatus {
	s = *s.DeepCopy()
	for i := range s.Conditions {
		s.Conditions[i].LastTransitionTime = metav1.Time{}
		s.Conditions[i].LastProbeTime = metav1.Time{}
	}
	s.StartTime = nil
	return s
}
