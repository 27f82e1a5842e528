package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// Heartbeats, as the kubelet's defaults. The lease is the node's liveness, renewed every
// leaseRenewInterval. The Node's status is looked at every nodeStatusCheckPeriod and written
// only when it changed, or when the last write is nodeStatusReportPeriod old (the kubelet's
// nodeStatusReportFrequency), which keeps its conditions' heartbeat times fresh for readers.
const (
	leaseDuration          = 40 * time.Second
	leaseRenewInterval     = 10 * time.Second
	nodeStatusCheckPeriod  = time.Minute
	nodeStatusReportPeriod = 5 * time.Minute
	maxPods                = 110
)

// NodeInfo describes the machine the node stands for.
type NodeInfo struct {
	Name        string
	InternalIP  net.IP
	KubeletPort int
	CPUs        int
	MemoryBytes int64
	DiskBytes   int64
	Version     string
	Runtime     string
	// PodCIDR, when set, is the node's pod range written in the Node's spec.podCIDR at its
	// registration (node IPAM then keeps it for this node); empty leaves it to node IPAM.
	PodCIDR string
	// DiskPressure says the data dir's filesystem has less than its reserve free (checkDisk):
	// the Node's DiskPressure condition is then True, and the scheduler sends no new pods.
	DiskPressure bool
	// Reserved is what the machine keeps for gantry itself and the host (the kubelet's
	// system-reserved): the Node's allocatable is its capacity less this, so kube-scheduler
	// leaves a pod Pending when the pods already there asked for the rest.
	Reserved PodLimits
}

// Default reserves of the shared node: what gantry server itself (etcd, the API server, the
// controllers) and the host need on a small machine.
var DefaultReserved = PodLimits{CPUMillis: 250, MemoryBytes: 768 << 20}

// allocatable is capacity less the reserve, never below zero.
func allocatable(capacity corev1.ResourceList, reserved PodLimits) corev1.ResourceList {
	out := capacity.DeepCopy()
	cpu := capacity.Cpu().MilliValue() - reserved.CPUMillis
	mem := capacity.Memory().Value() - reserved.MemoryBytes
	out[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(cpu, 0), resource.DecimalSI)
	out[corev1.ResourceMemory] = *resource.NewQuantity(max(mem, 0), resource.BinarySI)
	return out
}

// MachineInfo reads this machine's size.
func MachineInfo(name string, ip net.IP, kubeletPort int, dataDir string) NodeInfo {
	info := NodeInfo{Name: name, InternalIP: ip, KubeletPort: kubeletPort, CPUs: runtime.NumCPU(), Version: "v1.37.2-gantry", Runtime: "runc"}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			info.MemoryBytes = kb << 10
		}
	}
	if st, err := statfs(dataDir); err == nil {
		info.DiskBytes = st
	}
	return info
}

// MakeNode is the Node object for info: Ready, with the machine's capacity.
func MakeNode(info NodeInfo, now time.Time) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(info.CPUs), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(info.MemoryBytes, resource.BinarySI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(info.DiskBytes, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	addresses := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: info.Name}}
	if info.InternalIP != nil {
		addresses = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: info.InternalIP.String()}}, addresses...)
	}
	var spec corev1.NodeSpec
	if info.PodCIDR != "" {
		spec = corev1.NodeSpec{PodCIDR: info.PodCIDR, PodCIDRs: []string{info.PodCIDR}}
	}
	return &corev1.Node{
		Spec: spec,
		ObjectMeta: metav1.ObjectMeta{
			Name: info.Name,
			Labels: map[string]string{
				corev1.LabelHostname:               info.Name,
				corev1.LabelOSStable:               "linux",
				corev1.LabelArchStable:             runtime.GOARCH,
				"node.kubernetes.io/instance-type": "gantry-sandbox",
				"gantry.dev/compute-type":          "serverless",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable(capacity, info.Reserved),
			Addresses:   addresses,
			DaemonEndpoints: corev1.NodeDaemonEndpoints{
				KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(info.KubeletPort)},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          info.Version,
				OperatingSystem:         "linux",
				Architecture:            runtime.GOARCH,
				ContainerRuntimeVersion: info.Runtime,
			},
			Conditions: conditions(now, info.DiskPressure),
		},
	}
}

func conditions(now time.Time, diskPressure bool) []corev1.NodeCondition {
	t := metav1.NewTime(now).Rfc3339Copy()
	c := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
	}
	disk := c(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "ephemeral storage is limited per pod")
	if diskPressure {
		disk = c(corev1.NodeDiskPressure, corev1.ConditionTrue, "KubeletHasDiskPressure", "the data dir's filesystem has less than its reserve free")
	}
	return []corev1.NodeCondition{
		c(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "gantry node is ready to run sandboxes"),
		c(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "sandboxes are sized per pod"),
		disk,
		c(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
		c(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "pods are on the gantry bridge"),
	}
}

// nodeStatus is the status the node reports, built on old (what the API has): capacity,
// addresses, endpoints, system info and conditions are the node's; anything else stays. A
// condition keeps its transition time while its status stays, and its heartbeat time until
// the next write (touch). changed says whether it differs from old.
func nodeStatus(old corev1.NodeStatus, info NodeInfo, now time.Time) (status corev1.NodeStatus, changed bool) {
	want := MakeNode(info, now).Status
	out := *old.DeepCopy()
	out.Capacity, out.Allocatable = want.Capacity, want.Allocatable
	out.Addresses, out.DaemonEndpoints = want.Addresses, want.DaemonEndpoints
	out.NodeInfo.KubeletVersion = want.NodeInfo.KubeletVersion
	out.NodeInfo.OperatingSystem = want.NodeInfo.OperatingSystem
	out.NodeInfo.Architecture = want.NodeInfo.Architecture
	out.NodeInfo.ContainerRuntimeVersion = want.NodeInfo.ContainerRuntimeVersion
	var conds []corev1.NodeCondition
	for _, c := range want.Conditions {
		for _, o := range old.Conditions {
			if o.Type != c.Type {
				continue
			}
			c.LastHeartbeatTime = o.LastHeartbeatTime
			if o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		conds = append(conds, c)
	}
	// Conditions others set on the node stay, after the node's own.
	for _, o := range old.Conditions {
		if !slices.ContainsFunc(want.Conditions, func(c corev1.NodeCondition) bool { return c.Type == o.Type }) {
			conds = append(conds, o)
		}
	}
	out.Conditions = conds
	return out, !equality.Semantic.DeepEqual(old, out)
}

// touch sets the heartbeat time of the node's own conditions to now, for a write.
func touch(s *corev1.NodeStatus, now time.Time) {
	t := metav1.NewTime(now).Rfc3339Copy()
	for i := range s.Conditions {
		if slices.ContainsFunc(conditions(now, false), func(c corev1.NodeCondition) bool { return c.Type == s.Conditions[i].Type }) {
			s.Conditions[i].LastHeartbeatTime = t
		}
	}
}

// nodeReporter keeps the Node object and its lease, writing only what changed: it holds the
// objects as last written, so a renewal is one Update and an unchanged status no call at all.
type nodeReporter struct {
	client   kubernetes.Interface
	info     NodeInfo
	clock    clock.WithTicker
	node     *corev1.Node // as last read or written; nil: read it again
	reported time.Time    // when the status was last written
	lease    *coordinationv1.Lease
	// diskPressure, when set, says whether the node is under disk pressure now.
	diskPressure func() bool
}

// register creates the Node or takes the one there, sets its labels when they differ, and
// writes its status.
func (r *nodeReporter) register(ctx context.Context) error {
	want := MakeNode(r.info, r.clock.Now())
	nodes := r.client.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, r.info.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: want.ObjectMeta, Spec: want.Spec}, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", r.info.Name, err)
	}
	labelled := cur.DeepCopy()
	if labelled.Labels == nil {
		labelled.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		labelled.Labels[k] = v
	}
	if !equality.Semantic.DeepEqual(cur.Labels, labelled.Labels) {
		// A patch of the labels alone, for the reason reportStatus patches.
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labelled.Labels}})
		if err != nil {
			return err
		}
		if cur, err = nodes.Patch(ctx, r.info.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("labelling node %s: %w", r.info.Name, err)
		}
	}
	r.node = cur
	return r.reportStatus(ctx, true)
}

// reportStatus writes the node's status when it changed, when force is set, or when the last
// write is nodeStatusReportPeriod old.
func (r *nodeReporter) reportStatus(ctx context.Context, force bool) error {
	now := r.clock.Now()
	nodes := r.client.CoreV1().Nodes()
	if r.node == nil {
		cur, err := nodes.Get(ctx, r.info.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading node %s: %w", r.info.Name, err)
		}
		r.node = cur
	}
	info := r.info
	if r.diskPressure != nil {
		info.DiskPressure = r.diskPressure()
	}
	status, changed := nodeStatus(r.node.Status, info, now)
	if !changed && !force && now.Sub(r.reported) < nodeStatusReportPeriod {
		return nil
	}
	touch(&status, now)
	// A merge patch of the status alone, as the kubelet writes it: an update would send the
	// spec as this copy has it, and NodeRestriction refuses a node's write that would undo
	// the taints the node lifecycle controller added meanwhile (not-ready at registration).
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	updated, err := nodes.Patch(ctx, r.info.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		r.node = nil
		return fmt.Errorf("reporting status of node %s: %w", r.info.Name, err)
	}
	r.node, r.reported = updated, now
	return nil
}

// renewLease renews the node's lease, creating it when it is missing.
func (r *nodeReporter) renewLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, leaseRenewInterval)
	defer cancel()
	leases := r.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(r.clock.Now())
	if r.lease == nil {
		lease, err := leases.Get(ctx, r.info.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: r.info.Name, Namespace: corev1.NamespaceNodeLease},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(r.info.Name),
					LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())),
					RenewTime:            &now,
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating lease of node %s: %w", r.info.Name, err)
			}
			r.lease = lease
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading lease of node %s: %w", r.info.Name, err)
		}
		r.lease = lease
	}
	lease := r.lease.DeepCopy()
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(r.info.Name)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration.Seconds()))
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		// A conflict or a lease gone: read it again next time.
		r.lease = nil
		return fmt.Errorf("renewing lease of node %s: %w", r.info.Name, err)
	}
	r.lease = updated
	return nil
}

// heartbeat renews the lease every leaseRenewInterval and reports the status when due, until
// ctx ends.
func (r *nodeReporter) heartbeat(ctx context.Context, report func(error)) {
	leaseTick := r.clock.NewTicker(leaseRenewInterval)
	statusTick := r.clock.NewTicker(nodeStatusCheckPeriod)
	defer leaseTick.Stop()
	defer statusTick.Stop()
	report(r.renewLease(ctx))
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTick.C():
			report(r.renewLease(ctx))
		case <-statusTick.C():
			report(r.reportStatus(ctx, false))
		}
	}
}
