package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Timing, as the kubelet's lease: renewed every leaseRenewInterval, valid leaseDuration.
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
	// workers place pods in parallel: each placement is two API writes.
	workers = 4
)

// gcKey is the queue's key for "remove the nodes whose pods are gone".
const gcKey = "\x00gc"

// Options configure the scheduler.
type Options struct {
	// Client acts for the scheduler: it creates and deletes Nodes and their leases, binds
	// pods, and records events.
	Client kubernetes.Interface
	// PodCIDR is the pods' range; serverless pods get addresses from the part of it kept
	// for them (sandbox.ServerlessRange).
	PodCIDR string
	// Agent describes the node agent that serves the serverless nodes: their addresses,
	// kubelet endpoint and system info are its.
	Agent  node.NodeInfo
	Logger *slog.Logger
	// Clock drives the heartbeat; nil means the real clock.
	Clock clock.WithTicker
	// Elect, when set, runs place while this server holds the placement's lease, and returns
	// once ctx ends (nil) or the lease is lost (an error): the servers of a cluster each run
	// a scheduler for the serverless nodes of their own machine, and one of them at a time
	// places pods (on its machine). Nil places at once: a single server is the only one.
	Elect func(ctx context.Context, place func(ctx context.Context) error) error
	// SchedulerName is the spec.schedulerName of the pods it places; empty means
	// v1alpha1.SchedulerName (tests run schedulers beside the server's under another).
	SchedulerName string
}

// Scheduler places serverless pods, one per node.
type Scheduler struct {
	opts  Options
	log   *slog.Logger
	clock clock.WithTicker
	queue workqueue.TypedRateLimitingInterface[string]
	// own is the range of the addresses of this machine's serverless nodes: the scheduler
	// keeps up (lease, removal, registration again) only the nodes whose address is there.
	own netip.Prefix
	// placing is true while this scheduler places pods: always on a single server, while it
	// holds the lease in a cluster.
	placing atomic.Bool

	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	recorder record.EventRecorder

	mu       sync.Mutex
	addrs    addresses
	reserved map[netip.Addr]bool // addresses of nodes being created, not yet in the informer
	leases   map[string]*coordinationv1.Lease

	ready chan struct{}
}

// New checks opts and returns a scheduler that Start runs.
func New(opts Options) (*Scheduler, error) {
	if opts.Client == nil {
		return nil, errors.New("serverless scheduler: a client is required")
	}
	cidr, err := netip.ParsePrefix(opts.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("serverless scheduler: pod CIDR %q: %w", opts.PodCIDR, err)
	}
	r, err := sandbox.ServerlessRange(cidr.Masked())
	if err != nil {
		return nil, fmt.Errorf("serverless scheduler: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.SchedulerName == "" {
		opts.SchedulerName = v1alpha1.SchedulerName
	}
	return &Scheduler{opts: opts, log: opts.Logger.With("component", "serverless-scheduler"), clock: opts.Clock, own: r,
		addrs: newAddresses(r), reserved: map[netip.Addr]bool{}, leases: map[string]*coordinationv1.Lease{}, ready: make(chan struct{})}, nil
}

// Ready is closed once the scheduler places pods.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Start places pods (in a cluster, while it holds the lease: see Options.Elect), removes
// the nodes of pods that are gone (those left by an earlier run first) and keeps the
// serverless nodes' leases, until ctx ends. Of the serverless nodes it keeps up only its own
// machine's (owns), whoever placed their pods.
func (s *Scheduler) Start(ctx context.Context) error {
	c := s.opts.Client
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	s.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: s.opts.SchedulerName})

	s.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "serverless-scheduler"})
	defer s.queue.ShutDown()

	podFactory := informers.NewSharedInformerFactoryWithOptions(c, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.schedulerName", s.opts.SchedulerName).String()
		}))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(c, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{v1alpha1.ComputeTypeTaintKey: v1alpha1.ComputeTypeTaintValue}).String()
		}))
	podInf, nodeInf := podFactory.Core().V1().Pods(), nodeFactory.Core().V1().Nodes()
	s.pods, s.nodes = podInf.Lister(), nodeInf.Lister()
	enqueue := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			s.queue.Add(key)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(any) { s.queue.Add(gcKey) },
	}); err != nil {
		return err
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if n, ok := o.(*corev1.Node); ok {
				s.release(n.Name)
			}
		},
	}); err != nil {
		return err
	}
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	for _, f := range []informers.SharedInformerFactory{podFactory, nodeFactory} {
		for t, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("serverless scheduler: cache of %v did not sync", t)
			}
		}
	}
	// The nodes of pods that went while no scheduler ran.
	s.queue.Add(gcKey)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.processNext(ctx) {
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.heartbeat(ctx)
	}()
	close(s.ready)
	var err error
	if s.opts.Elect == nil {
		s.placing.Store(true)
		<-ctx.Done()
	} else {
		err = s.opts.Elect(ctx, s.place)
	}
	s.queue.ShutDown()
	wg.Wait()
	return err
}

// place places pods until ctx ends: those that waited while another server held the lease
// first.
func (s *Scheduler) place(ctx context.Context) error {
	s.log.Info("placing serverless pods", "nodes", s.own)
	s.placing.Store(true)
	defer s.placing.Store(false)
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			s.queue.Add(p.Namespace + "/" + p.Name)
		}
	}
	<-ctx.Done()
	return nil
}

// owns says whether the serverless node name is this machine's: its address lies in the
// range this scheduler hands out.
func (s *Scheduler) owns(name string) bool { return node.ServesServerlessNode(s.own, name) }

func (s *Scheduler) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	var err error
	if key == gcKey {
		err = s.collect(ctx)
	} else {
		err = s.sync(ctx, key)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("serverless scheduling", "key", key, "err", err)
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

// sync places the pod at key when it waits for a node.
func (s *Scheduler) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return s.collect(ctx)
	}
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil || pod.Spec.SchedulerName != s.opts.SchedulerName {
		return nil
	}
	if pod.Spec.NodeName != "" {
		return s.ensureNode(ctx, pod)
	}
	if !s.placing.Load() {
		return nil // another server places it; this one, if it takes the lease
	}
	size, msg := admit(pod)
	if msg != "" {
		return s.unschedulable(ctx, pod, msg)
	}
	target, want, err := s.reserve(pod, size)
	if err != nil {
		if errors.Is(err, ErrNoAddress) {
			return s.unschedulable(ctx, pod, "no serverless node can be made: "+err.Error())
		}
		return err
	}
	// The Node and the binding are written at once: the API server does not ask that a
	// binding's node exist, and the name is already this pod's (no node the informer holds
	// and no creation under way has it), so neither write waits for the other: a cold start
	// pays one round trip, not two.
	var created *corev1.Node
	var createErr error
	var wg sync.WaitGroup
	if want != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, createErr = s.opts.Client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		}()
	}
	bindErr := s.opts.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: target},
	}, metav1.CreateOptions{})
	wg.Wait()
	switch {
	case createErr == nil:
	case apierrors.IsAlreadyExists(createErr) && bindErr == nil:
		// Not this scheduler's node after all (another's, unseen): the pod must not share it.
		return s.evict(ctx, pod, target)
	case apierrors.IsAlreadyExists(createErr):
		// Taken meanwhile: the next attempt picks another address. The reservation stays
		// until the informer brings that node.
		return fmt.Errorf("registering node %s: %w", target, createErr)
	default:
		s.release(target)
		if bindErr == nil {
			// Bound to a node not registered yet: the next sync of the bound pod registers it.
			return fmt.Errorf("registering node %s: %w", target, createErr)
		}
	}
	if bindErr != nil {
		if apierrors.IsNotFound(bindErr) || apierrors.IsConflict(bindErr) {
			// The pod went or was bound meanwhile: its node, if unused, goes with the next
			// collection.
			s.queue.Add(gcKey)
			return nil
		}
		return fmt.Errorf("binding pod %s to %s: %w", key, target, bindErr)
	}
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s (%s)", pod.Namespace, pod.Name, target, size.Capacity)
	if created != nil {
		// The new node's lease at once, off the pod's path; the heartbeat renews it.
		go func() {
			if err := s.renewLease(ctx, created); err != nil && ctx.Err() == nil {
				s.log.Warn("serverless node heartbeat", "node", created.Name, "err", err)
			}
		}()
	}
	return nil
}

// ensureNode registers the node of a pod bound to one of this machine's serverless nodes when
// it is missing (its creation failed after the binding, or someone deleted it): the Node is
// the reservation of the pod's address.
func (s *Scheduler) ensureNode(ctx context.Context, pod *corev1.Pod) error {
	ip, ok := node.ServerlessNodeIP(pod.Spec.NodeName)
	if !ok || !s.owns(pod.Spec.NodeName) {
		return nil
	}
	if _, err := s.nodes.Get(pod.Spec.NodeName); err == nil {
		return nil
	}
	s.mu.Lock()
	inFlight := s.reserved[ip]
	s.mu.Unlock()
	if inFlight {
		return nil
	}
	size, err := node.ProvisionedSize(pod)
	if err != nil {
		return nil // the node agent refuses the pod, saying why
	}
	_, err = s.opts.Client.CoreV1().Nodes().Create(ctx, MakeNode(s.opts.Agent, pod, ip, size, s.clock.Now()), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	n, err := s.opts.Client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if n.Labels[podUIDLabel] != string(pod.UID) {
		return s.evict(ctx, pod, n.Name)
	}
	return nil
}

// evict deletes a pod bound to a node made for another pod, so that its controller makes
// another, which gets a node of its own.
func (s *Scheduler) evict(ctx context.Context, pod *corev1.Pod, nodeName string) error {
	s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "node %s belongs to another pod; deleting this pod so that it is made again", nodeName)
	err := s.opts.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// admit is the pod's provisioned size, or why no serverless node can run it.
func admit(pod *corev1.Pod) (node.ServerlessSize, string) {
	if fields := node.Unsupported(pod); len(fields) > 0 {
		return node.ServerlessSize{}, "Pod not supported on a serverless node: fields not supported: " + strings.Join(fields, ", ")
	}
	size, err := node.ProvisionedSize(pod)
	if err != nil {
		return node.ServerlessSize{}, "Pod not supported on a serverless node: " + err.Error()
	}
	return size, ""
}

// unschedulable records why pod is not placed, as kube-scheduler does: a FailedScheduling
// event and the PodScheduled condition False, Unschedulable, with the message.
func (s *Scheduler) unschedulable(ctx context.Context, pod *corev1.Pod, msg string) error {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg {
			return nil // said already
		}
	}
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	p := pod.DeepCopy()
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: metav1.NewTime(s.clock.Now())}
	replaced := false
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			p.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		p.Status.Conditions = append(p.Status.Conditions, cond)
	}
	_, err := s.opts.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // a newer pod comes with its own event
	}
	return err
}

// reserve chooses the pod's node: the one an earlier attempt registered for it (want nil),
// or a new one at the next free address (want is the Node to create). The Node object is the
// address's reservation.
func (s *Scheduler) reserve(pod *corev1.Pod, size node.ServerlessSize) (target string, want *corev1.Node, err error) {
	made, err := s.nodes.List(labels.SelectorFromSet(labels.Set{podUIDLabel: string(pod.UID)}))
	if err != nil {
		return "", nil, err
	}
	if len(made) > 0 {
		return made[0].Name, nil, nil
	}
	ip, err := s.pickAddress()
	if err != nil {
		return "", nil, err
	}
	want = MakeNode(s.opts.Agent, pod, ip, size, s.clock.Now())
	return want.Name, want, nil
}

// pickAddress takes the next address that no serverless node and no creation under way
// holds.
func (s *Scheduler) pickAddress() (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ip, err := s.addrs.pick(func(ip netip.Addr) bool {
		if s.reserved[ip] {
			return true
		}
		_, err := s.nodes.Get(node.ServerlessNodeName(ip))
		return err == nil
	})
	if err == nil {
		s.reserved[ip] = true
	}
	return ip, err
}

// release forgets the reservation of a node's address once the informer holds the node
// (or its creation failed).
func (s *Scheduler) release(nodeName string) {
	ip, ok := node.ServerlessNodeIP(nodeName)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.reserved, ip)
	s.mu.Unlock()
}

// collect removes this machine's serverless nodes whose pods are gone, with their leases.
// Another machine's are its own scheduler's to remove: that one saw their pods before it made
// them, where this one's informer may not have yet.
func (s *Scheduler) collect(ctx context.Context) error {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	live := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		live[p.UID] = true
	}
	var errs []error
	for _, n := range nodes {
		uid := n.Labels[podUIDLabel]
		if uid == "" || live[types.UID(uid)] || n.DeletionTimestamp != nil || !s.owns(n.Name) {
			continue
		}
		err := s.opts.Client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &n.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("removing node %s: %w", n.Name, err))
			continue
		}
		s.log.Debug("removed the node of a pod that is gone", "node", n.Name, "pod", n.Annotations[v1alpha1.NodePodAnnotation])
		err = s.opts.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, n.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing lease of node %s: %w", n.Name, err))
		}
		s.mu.Lock()
		delete(s.leases, n.Name)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// heartbeat renews the lease of every serverless node of this machine every
// leaseRenewInterval, so the node lifecycle controller keeps them Ready while their pods live
// (and marks them NotReady when the machine is gone): one loop for all of them, one write
// per node and period.
func (s *Scheduler) heartbeat(ctx context.Context) {
	tick := s.clock.NewTicker(leaseRenewInterval)
	defer tick.Stop()
	for {
		s.renewLeases(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
	}
}

// renewLeases renews (or makes) the lease of every serverless node of this machine.
func (s *Scheduler) renewLeases(ctx context.Context) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		if ctx.Err() != nil {
			return
		}
		if n.DeletionTimestamp != nil || !s.owns(n.Name) {
			continue
		}
		if err := s.renewLease(ctx, n); err != nil {
			s.log.Warn("serverless node heartbeat", "node", n.Name, "err", err)
		}
	}
}

func (s *Scheduler) renewLease(ctx context.Context, n *corev1.Node) error {
	ctx, cancel := context.WithTimeout(ctx, leaseRenewInterval)
	defer cancel()
	leases := s.opts.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(s.clock.Now())
	s.mu.Lock()
	lease := s.leases[n.Name]
	s.mu.Unlock()
	if lease == nil {
		cur, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Owned by its Node, so the garbage collector removes it with the Node too.
			cur, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n.Name, Namespace: corev1.NamespaceNodeLease,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(n.Name),
					LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())),
					RenewTime:            &now,
				},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil // made meanwhile by the heartbeat or the placement: renewed next time
			}
			if err != nil {
				return fmt.Errorf("creating lease: %w", err)
			}
			s.mu.Lock()
			s.leases[n.Name] = cur
			s.mu.Unlock()
			return nil
		case err != nil:
			return fmt.Errorf("reading lease: %w", err)
		}
		lease = cur
	}
	lease = lease.DeepCopy()
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(n.Name)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration.Seconds()))
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.leases, n.Name) // a conflict or a lease gone: read it again next time
		return fmt.Errorf("renewing lease: %w", err)
	}
	s.leases[n.Name] = updated
	return nil
}
