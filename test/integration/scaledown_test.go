package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// bridgePort is the host side of a pod's veth: the bridge port the pod's frames arrive on.
// It finds the bridge by the pods' gateway address, the pod's MAC address in the host's ARP
// table, and the port in the bridge's forwarding table.
func bridgePort(gateway, podIP net.IP) (netlink.Link, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	bridge := 0
	for _, a := range addrs {
		if a.IP.Equal(gateway) {
			bridge = a.LinkIndex
		}
	}
	if bridge == 0 {
		return nil, fmt.Errorf("no link holds the pods' gateway %s", gateway)
	}
	neighs, err := netlink.NeighList(bridge, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var podMAC net.HardwareAddr
	for _, n := range neighs {
		if n.IP.Equal(podIP) && len(n.HardwareAddr) > 0 {
			podMAC = n.HardwareAddr
		}
	}
	if podMAC == nil {
		return nil, fmt.Errorf("no ARP entry for pod %s on the bridge", podIP)
	}
	fdb, err := netlink.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	for _, n := range fdb {
		if !bytes.Equal(n.HardwareAddr, podMAC) {
			continue
		}
		port, err := netlink.LinkByIndex(n.LinkIndex)
		if err == nil && port.Attrs().MasterIndex == bridge {
			return port, nil
		}
	}
	return nil, fmt.Errorf("pod %s (%s) is on no port of the bridge", podIP, podMAC)
}

// TestScaleDownUnderLoadStallsNoRequest: ten clients in a closed loop keep a revision at two
// pods (target 6 in flight each); then five of them stop, and the autoscaler takes it down to
// one pod while the other five go on. No request fails, and none waits: each takes at most
// 500 ms more than the app's 100 ms. The pod that
// leaves is made to be the one whose veth has the lower MAC address (the other gets a high
// pod-deletion-cost), the port a bridge with no address of its own takes its address from:
// before the bridge's address was pinned (internal/podnet), the gateway's address changed
// under the other pod when that veth went, and every request in flight stalled for about a
// second.
func TestScaleDownUnderLoadStallsNoRequest(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := autoscaledService(env, t, ns, "fall", "autoscale", map[string]string{
		autoscaling.InitialScaleAnnotationKey:      "2",
		autoscaling.MinScaleAnnotationKey:          "1",
		autoscaling.MaxScaleAnnotationKey:          "2",
		autoscaling.TargetAnnotationKey:            "6",
		autoscaling.TargetUtilizationPercentageKey: "100",
	})
	svc = readyService(t, env, svc)
	host := svc.Status.URL.Host
	selector := metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=fall-00001"}
	const (
		clients = 10
		app     = 100 * time.Millisecond
		bound   = app + 500*time.Millisecond
	)
	type result struct {
		began time.Time
		took  time.Duration
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	var active atomic.Int64 // clients 0 … active-1 send; the others idle
	active.Store(clients)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for i := range int64(clients) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if i >= active.Load() {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				began := time.Now()
				req, _ := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/?sleep=100", nil)
				req.Host = host
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				mu.Lock()
				results = append(results, result{began, time.Since(began), err})
				mu.Unlock()
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	var pods []corev1.Pod
	// The load holds the revision at its initial two pods.
	waitFor(t, "two ready pods", 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, selector)
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) == 2 && running(&pods[0]) && running(&pods[1]) && pods[0].Status.PodIP != "" && pods[1].Status.PodIP != "", nil
	})

	// Both pods have served (the host knows their MAC addresses) before one is chosen.
	time.Sleep(2 * time.Second)
	gateway := env.Server.PodNetwork.Gateway()
	var leaving, staying *corev1.Pod
	var lowest net.HardwareAddr
	for i := range pods {
		port, err := bridgePort(gateway, net.ParseIP(pods[i].Status.PodIP))
		if err != nil {
			t.Fatal(err)
		}
		if mac := port.Attrs().HardwareAddr; leaving == nil || bytes.Compare(mac, lowest) < 0 {
			leaving, lowest = &pods[i], mac
		}
	}
	for i := range pods {
		if pods[i].Name != leaving.Name {
			staying = &pods[i]
		}
	}
	t.Logf("pod %s (%s) is to leave; its veth has the lower MAC address, %s", leaving.Name, leaving.Status.PodIP, lowest)
	// The ReplicaSet removes the pod that costs least to remove.
	cost := []byte(`{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"1000"}}}`)
	if _, err := env.Client.CoreV1().Pods(ns).Patch(context.Background(), staying.Name, types.MergePatchType, cost, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	active.Store(clients / 2)
	// The pod is gone once its sandbox, and its veth with it, is.
	waitFor(t, "the revision down to one pod", 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, selector)
		if err != nil {
			return false, err
		}
		if len(list.Items) != 1 {
			pa, err := podAutoscaler(ctx, env, ns, "fall-00001")
			if err != nil {
				return false, err
			}
			return false, fmt.Errorf("%d pods; the PodAutoscaler desires %v", len(list.Items), ptr.Deref(pa.Status.DesiredScale, -1))
		}
		if list.Items[0].Name != staying.Name {
			return false, fmt.Errorf("pod %s stayed, not %s", list.Items[0].Name, staying.Name)
		}
		return true, nil
	})
	// The stall came a moment after the veth left.
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var slowest result
	failed, slow, after := 0, 0, 0
	for _, r := range results {
		if r.began.Before(left) {
			continue
		}
		after++
		if r.err != nil {
			failed++
			t.Errorf("request begun %s after the load fell failed: %v", r.began.Sub(left).Round(time.Millisecond), r.err)
			continue
		}
		if r.took > bound {
			slow++
		}
		if r.took > slowest.took {
			slowest = r
		}
	}
	t.Logf("%d requests from the scale-down on, the slowest %s (begun %s after the load fell)", after, slowest.took.Round(time.Millisecond), slowest.began.Sub(left).Round(time.Millisecond))
	if slow > 0 {
		t.Errorf("%d of %d requests took more than %s during the scale-down, the slowest %s (begun %s after the load fell)",
			slow, after, bound, slowest.took.Round(time.Millisecond), slowest.began.Sub(left).Round(time.Millisecond))
	}
	if after == 0 || failed > 0 {
		t.Errorf("%d requests from the scale-down on, %d failed", after, failed)
	}
}
