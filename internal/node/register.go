package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Heartbeats, as the kubelet's defaults.
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
	statusInterval     = time.Minute
	maxPods            = 110
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
	return &corev1.Node{
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
			Allocatable: capacity,
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
			Conditions: conditions(now),
		},
	}
}

func conditions(now time.Time) []corev1.NodeCondition {
	t := metav1.NewTime(now)
	c := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
	}
	return []corev1.NodeCondition{
		c(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "gantry node is ready to run sandboxes"),
		c(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "sandboxes are sized per pod"),
		c(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "ephemeral storage is limited per pod"),
		c(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
		c(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "pods are on the gantry bridge"),
	}
}

// register creates or updates the Node and returns it.
func register(ctx context.Context, c kubernetes.Interface, info NodeInfo) error {
	want := MakeNode(info, time.Now())
	nodes := c.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, info.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: want.ObjectMeta}, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", info.Name, err)
	}
	for k, v := range want.Labels {
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[k] = v
	}
	if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("labelling node %s: %w", info.Name, err)
	}
	cur.Status = want.Status
	if _, err := nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting status of node %s: %w", info.Name, err)
	}
	return nil
}

// heartbeat renews the node lease every 10 s and refreshes the node's conditions every
// minute, until ctx ends.
func heartbeat(ctx context.Context, c kubernetes.Interface, info NodeInfo, report func(error)) {
	leaseTick := time.NewTicker(leaseRenewInterval)
	statusTick := time.NewTicker(statusInterval)
	defer leaseTick.Stop()
	defer statusTick.Stop()
	report(renewLease(ctx, c, info.Name))
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTick.C:
			report(renewLease(ctx, c, info.Name))
		case <-statusTick.C:
			report(register(ctx, c, info))
		}
	}
}

func renewLease(ctx context.Context, c kubernetes.Interface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, leaseRenewInterval)
	defer cancel()
	leases := c.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(name),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(name)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration.Seconds()))
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}
