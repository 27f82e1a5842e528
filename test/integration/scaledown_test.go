package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/testenv"
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

// TestAPodLeavingUnderLoadStallsNoRequest: ten clients in a closed loop keep a revision of
// two pods busy while one pod leaves, as a scale-down from two to one removes it, and a new
// one takes its place. No request fails, and none waits: each takes at most 500 ms more than
// the app's 100 ms. The pod that leaves is the one whose veth has the lowest MAC address on
// the pod bridge, the port a bridge with no address of its own takes its address from:
// before the bridge's address was pinned (internal/podnet), the gateway's address changed
// under the other pod when it left, and every request in flight stalled for about a second.
func TestAPodLeavingUnderLoadStallsNoRequest(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "fall", "autoscale")
	svc.Spec.Template.Annotations = map[string]string{
		"autoscaling.knative.dev/min-scale": "2", "autoscaling.knative.dev/initial-scale": "2",
	}
	svc = readyService(t, env, svc)
	host := svc.Status.URL.Host
	selector := metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=fall-00001"}
	var pods []corev1.Pod
	waitFor(t, "two ready pods", 60*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, selector)
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) == 2 && running(&pods[0]) && running(&pods[1]) && pods[0].Status.PodIP != "" && pods[1].Status.PodIP != "", nil
	})

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
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
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

	// Both pods have served (the host knows their MAC addresses) before one is chosen.
	time.Sleep(2 * time.Second)
	gateway := env.Server.PodNetwork.Gateway()
	var leaving *corev1.Pod
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
	t.Logf("pod %s (%s) leaves; its veth has the lower MAC address, %s", leaving.Name, leaving.Status.PodIP, lowest)
	left := time.Now()
	if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), leaving.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pod is gone once its sandbox, and its veth with it, is; its replacement's veth has
	// joined once the replacement is ready.
	waitFor(t, "the pod gone and its replacement ready", 90*time.Second, func(ctx context.Context) (bool, error) {
		if _, err := env.Client.CoreV1().Pods(ns).Get(ctx, leaving.Name, metav1.GetOptions{}); err == nil {
			return false, fmt.Errorf("pod %s still there", leaving.Name)
		} else if !apierrors.IsNotFound(err) {
			return false, err
		}
		n, err := readyPods(ctx, env, ns, "fall-00001")
		if err != nil {
			return false, err
		}
		return n == 2, fmt.Errorf("%d ready pods", n)
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
			t.Errorf("request begun %s after the deletion failed: %v", r.began.Sub(left).Round(time.Millisecond), r.err)
			continue
		}
		if r.took > bound {
			slow++
		}
		if r.took > slowest.took {
			slowest = r
		}
	}
	t.Logf("%d requests from the deletion on, the slowest %s (begun %s after the deletion)", after, slowest.took.Round(time.Millisecond), slowest.began.Sub(left).Round(time.Millisecond))
	if slow > 0 {
		t.Errorf("%d of %d requests took more than %s while a pod left, the slowest %s (begun %s after the deletion)",
			slow, after, bound, slowest.took.Round(time.Millisecond), slowest.began.Sub(left).Round(time.Millisecond))
	}
	if after == 0 || failed > 0 {
		t.Errorf("%d requests from the deletion on, %d failed", after, failed)
	}
}
