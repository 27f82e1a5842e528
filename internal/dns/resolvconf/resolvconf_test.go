package resolvconf

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var dnsServer = net.ParseIP("10.42.0.1")

func TestResolvConf(t *testing.T) {
	want := "nameserver 10.42.0.1\n" +
		"search shop.svc.cluster.local svc.cluster.local cluster.local\n" +
		"options ndots:5\n"
	if diff := cmp.Diff(want, string(ForNamespace("shop", dnsServer))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPodResolvConf(t *testing.T) {
	host := []byte("# systemd-resolved\nnameserver 127.0.0.53\nnameserver 192.0.2.53 ; upstream\noptions edns0 trust-ad\nsearch corp.example\n")
	cluster := "nameserver 10.42.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want string
	}{
		{name: "default policy is ClusterFirst", want: cluster},
		{name: "ClusterFirst", spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst}, want: cluster},
		{name: "Default is the host's, without loopback servers", spec: corev1.PodSpec{DNSPolicy: corev1.DNSDefault},
			want: "nameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n"},
		{name: "ClusterFirst on the host network is the host's", spec: corev1.PodSpec{HostNetwork: true},
			want: "nameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n"},
		{name: "ClusterFirstWithHostNet", spec: corev1.PodSpec{HostNetwork: true, DNSPolicy: corev1.DNSClusterFirstWithHostNet}, want: cluster},
		{name: "None is dnsConfig alone", spec: corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"192.0.2.1"}, Searches: []string{"a.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "rotate"}},
		}}, want: "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2 rotate\n"},
		{name: "dnsConfig adds to ClusterFirst and overrides its options", spec: corev1.PodSpec{DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"192.0.2.1", "10.42.0.1"}, Searches: []string{"svc.cluster.local", "b.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}},
		}}, want: "nameserver 10.42.0.1\nnameserver 192.0.2.1\n" +
			"search shop.svc.cluster.local svc.cluster.local cluster.local corp.example b.example\noptions ndots:1\n"},
		{name: "three nameservers at most", spec: corev1.PodSpec{DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"},
		}}, want: "nameserver 10.42.0.1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n" +
			"search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}, Spec: tc.spec}
			if diff := cmp.Diff(tc.want, string(ForPod(pod, dnsServer, host))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodResolvConfBoundsTheSearchList(t *testing.T) {
	var searches []string
	for i := range 40 {
		searches = append(searches, fmt.Sprintf("d%02d.%s.example", i, strings.Repeat("x", 50)))
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}, Spec: corev1.PodSpec{
		DNSConfig: &corev1.PodDNSConfig{Searches: searches},
	}}
	c := parseResolvConf(ForPod(pod, dnsServer, nil))
	if n := len(c.searches); n > maxSearchDomains || len(strings.Join(c.searches, " ")) > maxSearchChars {
		t.Errorf("%d search domains, %d characters: past the bounds", n, len(strings.Join(c.searches, " ")))
	}
	if c.searches[0] != "shop.svc.cluster.local" {
		t.Errorf("the cluster's search path was cut first: %v", c.searches[:3])
	}
}

func TestHostResolvConfSkipsLoopbackOnlyFiles(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub.conf")
	upstream := filepath.Join(dir, "upstream.conf")
	for path, body := range map[string]string{stub: "nameserver 127.0.0.53\n", upstream: "nameserver 192.0.2.53\n"} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer func(old []string) { hostResolvConfPaths = old }(hostResolvConfPaths)
	hostResolvConfPaths = []string{filepath.Join(dir, "missing"), stub, upstream}
	if got := string(Host()); got != "nameserver 192.0.2.53\n" {
		t.Errorf("HostResolvConf = %q, want the upstream file", got)
	}
	hostResolvConfPaths = []string{stub}
	if got := Host(); got != nil {
		t.Errorf("HostResolvConf with a loopback stub only = %q, want nil", got)
	}
}
