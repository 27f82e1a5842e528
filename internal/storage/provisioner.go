package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Options configure a Provisioner.
type Options struct {
	// Client reaches the API server.
	Client kubernetes.Interface
	// Dir holds the volumes' directories, one per PersistentVolume: <Dir>/<handle>.
	Dir string
	// Logger logs what the provisioner does; nil logs nowhere.
	Logger *slog.Logger
	// NodeName is the node of this machine, whose node agent mounts the directories under
	// Dir. Each volume made names it (NodeAnnotation), and a provisioner removes the
	// directories, and lets go of the volumes, of its own machine only. Empty on a single
	// server: every volume is its own.
	NodeName string
	// Elect, when set, runs provision while this server holds the provisioning lease and
	// returns once ctx ends (nil) or the lease is lost (an error): the servers of a cluster
	// each keep their own machine's volumes, and one of them at a time makes new ones (on its
	// machine). Nil provisions at once: a single server is the only one.
	Elect func(ctx context.Context, provision func(ctx context.Context) error) error
}

// Provisioner makes a directory and a PersistentVolume for every pending claim whose class
// it provisions (the class's provisioner is DriverName), and removes both once the claim is
// gone and the volume's reclaim policy is Delete. It is level-based: each claim and volume is
// converged from what the API holds now, so a restart (or a missed event) loses nothing.
type Provisioner struct {
	opts     Options
	log      *slog.Logger
	dirs     Dirs
	queue    workqueue.TypedRateLimitingInterface[string]
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
	classes  storagelisters.StorageClassLister
	recorder record.EventRecorder
	ready    chan struct{}
	// provisioning is true while this provisioner makes volumes: always on a single server,
	// while it holds the lease in a cluster.
	provisioning atomic.Bool
}

// NewProvisioner checks opts and returns a provisioner that Start runs.
func NewProvisioner(opts Options) (*Provisioner, error) {
	if opts.Client == nil {
		return nil, errors.New("storage: a client is required")
	}
	if opts.Dir == "" {
		return nil, errors.New("storage: the volumes' directory is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provisioner{opts: opts, log: opts.Logger.With("part", "storage"), dirs: Dirs{Base: opts.Dir}, ready: make(chan struct{})}, nil
}

// Ready is closed once the provisioner's caches are filled and it provisions.
func (p *Provisioner) Ready() <-chan struct{} { return p.ready }

// Keys of the queue: a claim is "claim/<namespace>/<name>", a volume "volume/<name>".
const (
	claimKey  = "claim/"
	volumeKey = "volume/"
)

// Start creates the class (EnsureClass), then provisions until ctx ends: in a cluster
// (Options.Elect) it makes volumes while it holds the lease, and reclaims its own machine's
// volumes all along; a single server needs no lease.
func (p *Provisioner) Start(ctx context.Context) error {
	if err := os.MkdirAll(p.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("shared volumes directory: %w", err)
	}
	if err := EnsureClass(ctx, p.opts.Client); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(p.opts.Client, 10*time.Minute)
	claimInf := factory.Core().V1().PersistentVolumeClaims()
	volumeInf := factory.Core().V1().PersistentVolumes()
	classInf := factory.Storage().V1().StorageClasses()
	p.claims, p.volumes, p.classes = claimInf.Lister(), volumeInf.Lister(), classInf.Lister()
	p.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "shared-storage"})
	defer p.queue.ShutDown()

	enqueue := func(prefix string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				p.queue.Add(prefix + key)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add}
	}
	if _, err := claimInf.Informer().AddEventHandler(enqueue(claimKey)); err != nil {
		return err
	}
	if _, err := volumeInf.Informer().AddEventHandler(enqueue(volumeKey)); err != nil {
		return err
	}
	// A class made after its claims: look at every claim again.
	if _, err := classInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) {
		claims, _ := p.claims.List(labels.Everything())
		for _, c := range claims {
			p.queue.Add(claimKey + c.Namespace + "/" + c.Name)
		}
	}}); err != nil {
		return err
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.opts.Client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	p.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: DriverName})

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("storage: filling the %v cache", typ)
		}
	}
	close(p.ready)
	go wait.UntilWithContext(ctx, p.work, time.Second)
	if p.opts.Elect != nil {
		return p.opts.Elect(ctx, p.provision)
	}
	p.provisioning.Store(true)
	<-ctx.Done()
	return nil
}

// provision makes volumes until ctx ends, first for the claims that waited while another
// server held the lease.
func (p *Provisioner) provision(ctx context.Context) error {
	p.log.Info("provisioning shared volumes", "node", p.opts.NodeName)
	p.provisioning.Store(true)
	defer p.provisioning.Store(false)
	claims, err := p.claims.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, c := range claims {
		p.queue.Add(claimKey + c.Namespace + "/" + c.Name)
	}
	<-ctx.Done()
	return nil
}

// owns says whether pv's directory is on this machine: the volume names this machine's node,
// or (a volume made before volumes named theirs) its directory is here. On a single server
// every volume is its own.
func (p *Provisioner) owns(pv *corev1.PersistentVolume) bool {
	if p.opts.NodeName == "" {
		return true
	}
	if n, ok := pv.Annotations[NodeAnnotation]; ok {
		return n == p.opts.NodeName
	}
	return pv.Spec.CSI != nil && p.dirs.Exists(pv.Spec.CSI.VolumeHandle)
}

func (p *Provisioner) work(ctx context.Context) {
	for {
		key, quit := p.queue.Get()
		if quit {
			return
		}
		err := p.sync(ctx, key)
		switch {
		case err == nil:
			p.queue.Forget(key)
		case ctx.Err() != nil:
		default:
			p.log.Warn("syncing", "key", key, "err", err)
			p.queue.AddRateLimited(key)
		}
		p.queue.Done(key)
	}
}

func (p *Provisioner) sync(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if name, ok := strings.CutPrefix(key, volumeKey); ok {
		return p.syncVolume(ctx, name)
	}
	ns, name, _ := strings.Cut(strings.TrimPrefix(key, claimKey), "/")
	return p.syncClaim(ctx, ns, name)
}

// class is the class of pvc when this provisioner provisions it, else nil.
func (p *Provisioner) class(pvc *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	name := ""
	if pvc.Spec.StorageClassName != nil {
		name = *pvc.Spec.StorageClassName
	}
	if name == "" {
		return nil
	}
	sc, err := p.classes.Get(name)
	if err != nil || sc.Provisioner != DriverName {
		return nil
	}
	return sc
}

// syncClaim provisions pvc when it is pending, of a class of this provisioner, and bound to
// no volume yet: the directory first, then the PersistentVolume, bound in advance to the
// claim; Kubernetes' PersistentVolume controller completes the binding.
func (p *Provisioner) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := p.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := p.class(pvc)
	pvName := VolumeName(string(pvc.UID))
	_, err = p.volumes.Get(pvName)
	if !wantsVolume(pvc, sc, err == nil) || !p.provisioning.Load() {
		return nil
	}
	if err := errors.Join(CheckClass(sc), CheckClaim(pvc)); err != nil {
		p.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "%v", err)
		return nil
	}
	params, _ := ParseParameters(sc.Parameters)
	if err := p.dirs.Create(pvName, params); err != nil {
		p.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "%v", err)
		return err
	}
	pv := MakePV(pvc, sc, pvName)
	if p.opts.NodeName != "" {
		pv.Annotations[NodeAnnotation] = p.opts.NodeName
	}
	if _, err := p.opts.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		p.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "creating PersistentVolume %s: %v", pvName, err)
		return err
	}
	p.log.Info("provisioned", "claim", ns+"/"+name, "volume", pvName)
	p.recorder.Eventf(pvc, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s (a directory of %s)", pvName, DriverName)
	return nil
}

// syncVolume reclaims a volume this provisioner made: once its claim is gone (Released) and
// its policy is Delete, the directory is removed and then the PersistentVolume; a volume
// being deleted for another reason loses its directory before Finalizer lets it go. A
// volume whose policy is Retain keeps its directory.
func (p *Provisioner) syncVolume(ctx context.Context, name string) error {
	pv, err := p.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	step := volumeAction(pv)
	if step != leave && !p.owns(pv) {
		return nil // its directory is on another machine, whose provisioner reclaims it
	}
	switch step {
	case finalize, finalizeKeepingDirectory:
		if step == finalize {
			if err := p.dirs.Remove(pv.Spec.CSI.VolumeHandle); err != nil {
				p.recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "%v", err)
				return err
			}
		}
		pv = pv.DeepCopy()
		pv.Finalizers = slices.DeleteFunc(pv.Finalizers, func(f string) bool { return f == Finalizer })
		_, err := p.opts.Client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	case reclaim:
		if err := p.dirs.Remove(pv.Spec.CSI.VolumeHandle); err != nil {
			p.recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "%v", err)
			return err
		}
		p.log.Info("deleted", "volume", name)
		err := p.opts.Client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	return nil
}

// wantsVolume reports whether the provisioner makes a volume for pvc: a claim of one of its
// classes (sc, nil when the claim's class is not one), pending, bound to no volume, not being
// deleted, and whose volume does not exist yet (volumeExists).
func wantsVolume(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, volumeExists bool) bool {
	return sc != nil && !volumeExists && pvc.Spec.VolumeName == "" &&
		pvc.Status.Phase == corev1.ClaimPending && pvc.DeletionTimestamp == nil
}

// A volumeStep is what the provisioner does to one of its volumes.
type volumeStep int

const (
	leave                    volumeStep = iota // nothing to do
	reclaim                                    // Released and Delete: remove the directory, then the PersistentVolume
	finalize                                   // being deleted, policy Delete: remove the directory, then Finalizer
	finalizeKeepingDirectory                   // being deleted, another policy: remove Finalizer only
)

// volumeAction decides what becomes of pv: volumes of other provisioners are left alone.
func volumeAction(pv *corev1.PersistentVolume) volumeStep {
	if pv.Annotations[ProvisionedByAnnotation] != DriverName || pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName {
		return leave
	}
	deleting := pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete
	switch {
	case pv.DeletionTimestamp != nil && !slices.Contains(pv.Finalizers, Finalizer):
		return leave
	case pv.DeletionTimestamp != nil && deleting:
		return finalize
	case pv.DeletionTimestamp != nil:
		return finalizeKeepingDirectory
	case pv.Status.Phase == corev1.VolumeReleased && deleting:
		return reclaim
	}
	return leave
}
