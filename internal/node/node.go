package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	"k8s.io/utils/clock"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/qpbin"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Options configure the node.
type Options struct {
	Info   NodeInfo
	Client kubernetes.Interface
	// ServerlessClient serves the pods the serverless scheduler bound to a node of their
	// own (spec.nodeName serverless-ip-…): it watches them and writes their status. Nil
	// leaves them to no one. Client, a node's identity, may touch only its own Node's pods.
	ServerlessClient kubernetes.Interface
	// ServerlessNodes is where the addresses of the serverless nodes this agent serves come
	// from (sandbox.ServerlessRange of its pod range): of the pods bound to serverless nodes,
	// it runs those whose node's address lies there, and leaves the others' to the machines
	// they belong to. Required with ServerlessClient.
	ServerlessNodes netip.Prefix
	Sandboxes       Sandboxes // a *sandbox.Manager
	Images          Images    // an *image.Store
	// StateDir holds the pods' volumes: <StateDir>/pods/<uid>/volumes/<name>.
	StateDir string
	// QueueProxyBinary is the binary bound into queue-proxy containers and run there as
	// `/gantry queue-proxy`: the queue-proxy's own (internal/qpbin) or the gantry binary.
	QueueProxyBinary string
	// KubeletCertFile and KubeletKeyFile serve the kubelet API; ClientCAFile verifies the API
	// server's client certificate.
	KubeletCertFile, KubeletKeyFile, ClientCAFile string
	Logger                                        *slog.Logger
	// Clock drives the node's timers; nil means the real clock.
	Clock clock.WithTicker
	// ClusterDNS is the cluster DNS server pods resolve names with (dnsPolicy ClusterFirst);
	// nil leaves pods the host's resolvers.
	ClusterDNS net.IP
	// AllowUnconfinedSeccomp lets a pod whose seccompProfile is Unconfined run without a
	// seccomp filter; when false such a pod's containers are refused.
	AllowUnconfinedSeccomp bool
	// AllowHostUsers lets a pod that sets spec.hostUsers: true run in the host's user
	// namespace, its root the host's root; when false such a pod is refused. Every other pod
	// runs in a user namespace of its own.
	AllowHostUsers bool
	// DefaultPodLimits holds the cgroup of a pod whose containers do not all set CPU or
	// memory limits (see podSize); zero fields mean DefaultPodLimits'.
	DefaultPodLimits PodLimits
	// DiskReserveBytes is the free space the filesystem of StateDir (the data dir, which
	// etcd shares) keeps: below it pulls are refused and pods evicted (see checkDisk). Zero
	// means DefaultDiskReserveBytes; a negative value turns the check off.
	DiskReserveBytes int64
	// SharedVolumesDir holds the directories of Gantry's shared storage (internal/storage),
	// one per PersistentVolume, by volume handle; empty refuses persistentVolumeClaim volumes.
	SharedVolumesDir string
	// Registerer receives the node's metrics (gantry_node_*: its pods, their start latency,
	// image pulls and evictions); nil registers none, and the node then observes nothing.
	Registerer prometheus.Registerer
}

// Node is a running serverless node.
type Node struct {
	opts       Options
	log        *slog.Logger
	clock      clock.WithTicker
	emptyLayer string // an empty directory: the root of containers that bring their program from the host (the queue-proxy)
	// watch calls exited when process pid ends; it reports false when it cannot watch.
	watch    func(ctx context.Context, pid int, exited func()) bool
	recorder record.EventRecorder
	pods     corelisters.PodLister // the shared node's and the serverless nodes' pods
	cms      *objectCache[*corev1.ConfigMap]
	secrets  *objectCache[*corev1.Secret]
	// services reads the API server's Service (default/kubernetes), whose address every
	// container gets in KUBERNETES_SERVICE_HOST and _PORT, as from a kubelet.
	services *objectCache[*corev1.Service]
	// serverlessCMs and serverlessSecrets read, with ServerlessClient, what the pods on
	// serverless nodes name.
	serverlessCMs     *objectCache[*corev1.ConfigMap]
	serverlessSecrets *objectCache[*corev1.Secret]

	// freeBytes is the free space of the filesystem holding a path (statfsFree).
	freeBytes func(path string) (int64, error)
	// diskPressure says the data dir's filesystem has less than its reserve free.
	diskPressure atomic.Bool
	// metrics are nil without Options.Registerer.
	metrics *metrics

	// sockets are the revision pods' queue-proxy sockets (DialPod).
	sockets queueSockets

	mu      sync.Mutex
	workers map[types.UID]*worker
	evicted map[types.UID]bool // pods evicted under disk pressure
	wg      sync.WaitGroup
	ready   chan struct{}
}

// New checks opts and returns a node that Start runs.
func New(opts Options) (*Node, error) {
	if opts.Client == nil || opts.Sandboxes == nil || opts.Images == nil {
		return nil, errors.New("node: a client, a sandbox manager and an image store are required")
	}
	if opts.ServerlessClient != nil && !opts.ServerlessNodes.IsValid() {
		return nil, errors.New("node: serving serverless nodes needs the range of their addresses")
	}
	if opts.QueueProxyBinary == "" {
		return nil, errors.New("node: QueueProxyBinary, the binary which queue-proxies run from, is required")
	}
	if err := qpbin.CheckExecutable(opts.QueueProxyBinary); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "pods"), 0o700); err != nil {
		return nil, fmt.Errorf("node state dir: %w", err)
	}
	empty := filepath.Join(opts.StateDir, "empty-layer")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return nil, fmt.Errorf("node state dir: %w", err)
	}
	n := &Node{opts: opts, log: opts.Logger.With("component", "node"), clock: opts.Clock, emptyLayer: empty, watch: watchExit, freeBytes: statfsFree,
		workers: map[types.UID]*worker{}, ready: make(chan struct{})}
	if opts.Registerer != nil {
		n.metrics = newMetrics(n.workerPhases)
		if err := n.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("node: registering its metrics: %w", err)
		}
	}
	return n, nil
}

// workerPhases is the phase of every pod the node runs, as its worker last reported it.
func (n *Node) workerPhases() []corev1.PodPhase {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]corev1.PodPhase, 0, len(n.workers))
	for _, w := range n.workers {
		out = append(out, w.reportedPhase())
	}
	return out
}

// pull pulls ref through the image store, and counts and times the pull by its result.
func (n *Node) pull(ctx context.Context, ref string) (*image.Image, error) {
	if n.metrics == nil {
		return n.opts.Images.Pull(ctx, ref)
	}
	began := n.clock.Now()
	img, err := n.opts.Images.Pull(ctx, ref)
	n.metrics.pulled(pullResult(img, err), n.clock.Since(began))
	return img, err
}

// Ready is closed once the node is registered and its pods are being synced.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Start registers the node, keeps its lease, runs its pods and serves the kubelet API until
// ctx ends. Sandboxes keep running when it returns: the next start re-adopts them.
func (n *Node) Start(ctx context.Context) error {
	// The host's OOM killer takes a pod's process before gantry, which holds etcd and the
	// API server, as it takes one before the kubelet.
	if err := setOOMScoreAdj(NodeOOMScoreAdj); err != nil {
		n.log.Warn("lowering gantry's OOM score", "err", err)
	}
	c := n.opts.Client
	reporter := &nodeReporter{client: c, info: n.opts.Info, clock: n.clock, diskPressure: n.diskPressure.Load}
	if err := reporter.register(ctx); err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	n.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "gantry-node", Host: n.opts.Info.Name})

	onNode := informers.NewSharedInformerFactoryWithOptions(c, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", n.opts.Info.Name).String()
		}))
	podInformer := onNode.Core().V1().Pods()
	listers := podListers{podInformer.Lister()}
	n.cms = newObjectCache(n.clock, configMapGetter(c))
	n.services = newObjectCache(n.clock, serviceGetter(c))
	n.secrets = newObjectCache(n.clock, secretGetter(c))
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { n.dispatch(ctx, o) },
		UpdateFunc: func(_, o any) { n.dispatch(ctx, o) },
		DeleteFunc: func(o any) { n.dispatch(ctx, deleted(o)) },
	}); err != nil {
		return err
	}
	factories := []informers.SharedInformerFactory{onNode}
	if sc := n.opts.ServerlessClient; sc != nil {
		// The serverless scheduler's pods, of which those bound to a serverless node are this
		// agent's: one watch for all the nodes, however many there are.
		serverless := informers.NewSharedInformerFactoryWithOptions(sc, 10*time.Minute,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("spec.schedulerName", v1alpha1.SchedulerName).String()
			}))
		inf := serverless.Core().V1().Pods()
		listers = append(listers, boundLister{inf.Lister(), n.opts.ServerlessNodes})
		n.serverlessCMs = newObjectCache(n.clock, configMapGetter(sc))
		n.serverlessSecrets = newObjectCache(n.clock, secretGetter(sc))
		if _, err := inf.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
			FilterFunc: func(o any) bool {
				if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = tomb.Obj
				}
				pod, ok := o.(*corev1.Pod)
				return ok && ServesServerlessNode(n.opts.ServerlessNodes, pod.Spec.NodeName)
			},
			Handler: cache.ResourceEventHandlerFuncs{
				AddFunc:    func(o any) { n.dispatch(ctx, o) },
				UpdateFunc: func(_, o any) { n.dispatch(ctx, o) },
				DeleteFunc: func(o any) { n.dispatch(ctx, deleted(o)) },
			},
		}); err != nil {
			return err
		}
		factories = append(factories, serverless)
	}
	n.pods = listers
	for _, f := range factories {
		f.Start(ctx.Done())
		for t, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("node: cache of %v did not sync", t)
			}
		}
	}
	n.cleanOrphans(ctx)

	go reporter.heartbeat(ctx, func(err error) {
		if err != nil {
			n.log.Warn("node heartbeat", "err", err)
		}
	})
	go n.collectImages(ctx)
	go n.watchDisk(ctx)
	srv, err := n.serveKubeletAPI()
	if err != nil {
		return err
	}
	close(n.ready)
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	n.wg.Wait()
	return nil
}

// dispatch hands a pod event to the pod's worker, starting one for a pod it has not seen.
func (n *Node) dispatch(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		tomb, ok := o.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	w, ok := n.workers[pod.UID]
	if !ok {
		w = newWorker(n, pod)
		n.workers[pod.UID] = w
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			w.run(ctx)
			n.mu.Lock()
			delete(n.workers, pod.UID)
			delete(n.evicted, pod.UID)
			n.mu.Unlock()
		}()
	}
	w.update(pod)
}

// onServerlessNode says whether pod is bound to a serverless node of its own.
func onServerlessNode(pod *corev1.Pod) bool {
	return strings.HasPrefix(pod.Spec.NodeName, v1alpha1.NodeNamePrefix)
}

// clientFor is the client that serves pod: the node's own for the shared node's pods,
// ServerlessClient for a serverless node's.
func (n *Node) clientFor(pod *corev1.Pod) kubernetes.Interface {
	if onServerlessNode(pod) && n.opts.ServerlessClient != nil {
		return n.opts.ServerlessClient
	}
	return n.opts.Client
}

// podListers looks pods up in several listers, the first that has a pod winning.
type podListers []corelisters.PodLister

func (l podListers) List(sel labels.Selector) ([]*corev1.Pod, error) { return listAll(l, sel) }

// listAll lists the pods sel selects in every one of ls.
func listAll[L interface {
	List(labels.Selector) ([]*corev1.Pod, error)
}](ls []L, sel labels.Selector) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, one := range ls {
		pods, err := one.List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

func (l podListers) Pods(ns string) corelisters.PodNamespaceLister {
	out := make(namespaceListers, len(l))
	for i, one := range l {
		out[i] = one.Pods(ns)
	}
	return out
}

type namespaceListers []corelisters.PodNamespaceLister

func (l namespaceListers) List(sel labels.Selector) ([]*corev1.Pod, error) {
	return listAll(l, sel)
}

func (l namespaceListers) Get(name string) (*corev1.Pod, error) {
	var err error
	for _, one := range l {
		var pod *corev1.Pod
		if pod, err = one.Get(name); err == nil {
			return pod, nil
		}
	}
	return nil, err
}

// boundLister holds, of the serverless scheduler's pods, those bound to a serverless node
// this agent serves (its address in nodes).
type boundLister struct {
	corelisters.PodLister
	nodes netip.Prefix
}

func (l boundLister) List(sel labels.Selector) ([]*corev1.Pod, error) {
	pods, err := l.PodLister.List(sel)
	return slices.DeleteFunc(pods, func(p *corev1.Pod) bool { return !ServesServerlessNode(l.nodes, p.Spec.NodeName) }), err
}

func (l boundLister) Pods(ns string) corelisters.PodNamespaceLister {
	return boundNamespaceLister{l.PodLister.Pods(ns), l.nodes}
}

type boundNamespaceLister struct {
	corelisters.PodNamespaceLister
	nodes netip.Prefix
}

func (l boundNamespaceLister) List(sel labels.Selector) ([]*corev1.Pod, error) {
	pods, err := l.PodNamespaceLister.List(sel)
	return slices.DeleteFunc(pods, func(p *corev1.Pod) bool { return !ServesServerlessNode(l.nodes, p.Spec.NodeName) }), err
}

func (l boundNamespaceLister) Get(name string) (*corev1.Pod, error) {
	pod, err := l.PodNamespaceLister.Get(name)
	if err == nil && !ServesServerlessNode(l.nodes, pod.Spec.NodeName) {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	return pod, err
}

// deleted marks a pod the API server no longer has as being deleted, at once, so its worker
// tears the sandbox down even when the pod was removed without a graceful deletion.
func deleted(o any) any {
	if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return o
	}
	pod = pod.DeepCopy()
	if pod.DeletionTimestamp == nil {
		now := metav1.Now()
		pod.DeletionTimestamp = &now
		pod.DeletionGracePeriodSeconds = new(int64)
	}
	return pod
}

// cleanOrphans removes sandboxes left by an earlier run whose pods are gone; the sandboxes
// of pods that still exist are re-adopted by their workers.
func (n *Node) cleanOrphans(ctx context.Context) {
	infos, err := n.opts.Sandboxes.Sandboxes(ctx)
	if err != nil {
		n.log.Warn("listing sandboxes", "err", err)
		return
	}
	pods, _ := n.pods.List(labels.Everything())
	live := map[string]bool{}
	for _, p := range pods {
		live[string(p.UID)] = true
	}
	for _, info := range infos {
		if live[info.ID] && info.NetworkReady {
			continue
		}
		n.log.Info("removing orphaned sandbox", "sandbox", info.ID, "pod", info.Spec.Namespace+"/"+info.Spec.Name)
		if err := n.opts.Sandboxes.RemoveSandbox(ctx, info.ID); err != nil {
			n.log.Warn("removing orphaned sandbox", "sandbox", info.ID, "err", err)
		}
	}
}

// imageGCPeriod is how often images no pod on the node uses are removed from the cache.
const imageGCPeriod = 5 * time.Minute

// collectImages removes, every imageGCPeriod, the cached images and layers that no pod on
// the node uses, as the kubelet's image garbage collection does.
func (n *Node) collectImages(ctx context.Context) {
	n.every(ctx, imageGCPeriod, n.collectImagesOnce)
}

// collectImagesOnce is one round of collectImages.
func (n *Node) collectImagesOnce(ctx context.Context) {
	pods, err := n.pods.List(labels.Everything())
	if err != nil {
		return
	}
	var inUse []string
	for _, p := range pods {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			inUse = append(inUse, c.Image)
		}
	}
	res, err := n.opts.Images.GC(ctx, inUse)
	if err != nil {
		n.log.Warn("image garbage collection", "err", err)
		return
	}
	if len(res.Images) > 0 {
		n.log.Info("removed unused images", "images", len(res.Images), "layers", len(res.Layers))
	}
}

// every runs f every period of the node's clock until ctx ends.
func (n *Node) every(ctx context.Context, period time.Duration, f func(context.Context)) {
	tick := n.clock.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		f(ctx)
	}
}

// serveKubeletAPI serves the kubelet endpoints kubectl reaches through the API server:
// container logs and exec. Callers present a client certificate of the cluster CA, and the
// API server authorises each request as it does the kubelet's (see authorize).
func (n *Node) serveKubeletAPI() (*http.Server, error) {
	ca, err := os.ReadFile(n.opts.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(n.opts.KubeletCertFile, n.opts.KubeletKeyFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w", err)
	}
	// The API server reaches the node at its InternalIP; no other interface (the pods'
	// bridge among them) serves the kubelet API.
	host := ""
	if ip := n.opts.Info.InternalIP; ip != nil {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(n.opts.Info.KubeletPort))
	ln, err := tls.Listen("tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("kubelet API: listening on %s: %w", addr, err)
	}
	reviewer := newAccessReviewer(n.opts.Client, n.opts.Info.Name, n.clock)
	srv := &http.Server{Handler: n.authorize(reviewer, n.kubeletHandler()), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
