package agent

import (
	"context"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/node"
)

// podCIDRTimeout bounds the wait for node IPAM to give the Node its range.
const podCIDRTimeout = time.Minute

// AssignedPodCIDR is the range node IPAM gave the node: it registers the Node when it is not
// there (the node agent fills its status later), then waits for its spec.podCIDR. A range
// given by hand (want) must be that one, and the range must lie in clusterCIDR.
func AssignedPodCIDR(ctx context.Context, client kubernetes.Interface, info node.NodeInfo, want, clusterCIDR string) (string, error) {
	nodes := client.CoreV1().Nodes()
	meta := node.MakeNode(info, time.Now()).ObjectMeta
	if _, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: meta}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("registering node %s: %w", info.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, podCIDRTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := nodes.Get(ctx, info.Name, metav1.GetOptions{})
		if err == nil && n.Spec.PodCIDR != "" {
			return CheckPodCIDR(n.Spec.PodCIDR, want, clusterCIDR)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return "", fmt.Errorf("node %s: waiting for its pod range: %w", info.Name, err)
			}
			return "", fmt.Errorf("node %s has no spec.podCIDR after %s: is the server's node IPAM on (gantry server --cluster-cidr)?", info.Name, podCIDRTimeout)
		case <-tick.C:
		}
	}
}

// CheckPodCIDR accepts the range node IPAM assigned when a range given by hand (want, "" for
// none) is the same and it lies in clusterCIDR.
func CheckPodCIDR(assigned, want, clusterCIDR string) (string, error) {
	_, a, err := net.ParseCIDR(assigned)
	if err != nil {
		return "", fmt.Errorf("the node's spec.podCIDR %q: %w", assigned, err)
	}
	if want != "" {
		_, w, err := net.ParseCIDR(want)
		if err != nil {
			return "", fmt.Errorf("--pod-cidr: %q is not a CIDR", want)
		}
		if w.String() != a.String() {
			return "", fmt.Errorf("--pod-cidr %s: the cluster's node IPAM gave this node %s; leave --pod-cidr out or give %s", want, a, a)
		}
	}
	_, c, err := net.ParseCIDR(clusterCIDR)
	if err != nil {
		return "", fmt.Errorf("--cluster-cidr: %q is not a CIDR", clusterCIDR)
	}
	if ao, _ := a.Mask.Size(); !c.Contains(a.IP) || ao < maskOnes(c) {
		return "", fmt.Errorf("--cluster-cidr %s: the node's range %s is not inside it (give the server's --cluster-cidr)", c, a)
	}
	return a.String(), nil
}

func maskOnes(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}
