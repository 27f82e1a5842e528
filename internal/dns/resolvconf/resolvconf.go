// Package resolvconf writes a pod's /etc/resolv.conf as the kubelet does: the cluster DNS
// server with the namespace's search path for dnsPolicy ClusterFirst, the host's resolvers for
// Default, and dnsConfig merged in. It is small on purpose: the node imports it.
package resolvconf

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Limits of a resolv.conf, as the kubelet applies them (glibc reads at most three
// nameservers; the search list is bounded in domains and characters).
const (
	maxNameservers   = 3
	maxSearchDomains = 32
	maxSearchChars   = 2048
)

// ndotsOption is the kubelet's: a name with fewer than five dots is tried on the search path
// first, so "hello", "hello.default" and "hello.default.svc" reach the cluster.
const ndotsOption = "ndots:5"

// ClusterDomain is the cluster's DNS domain, as in every Kubernetes cluster's default.
const ClusterDomain = "cluster.local"

// ForNamespace is the /etc/resolv.conf of a pod in namespace under dnsPolicy ClusterFirst: the
// cluster DNS server at server, the namespace's search path and ndots 5, as the kubelet
// writes it.
func ForNamespace(namespace string, server net.IP) []byte {
	return clusterConfig(namespace, server).bytes()
}

// ForPod is pod's /etc/resolv.conf by its dnsPolicy and dnsConfig, as the kubelet
// makes it: ClusterFirst (the default, and ClusterFirstWithHostNet) points at the cluster DNS
// server at server with the namespace's search path and the host's search domains after it;
// Default is the host's configuration (host, the host's resolv.conf), without loopback
// nameservers, which a pod's network namespace cannot reach; None is dnsConfig alone.
// dnsConfig's nameservers and searches are appended and its options override; the result is
// bounded to three nameservers and 32 search domains (2048 characters).
func ForPod(pod *corev1.Pod, server net.IP, host []byte) []byte {
	hostCfg := parseResolvConf(host)
	hostCfg.nameservers = slices.DeleteFunc(hostCfg.nameservers, func(s string) bool {
		ip := net.ParseIP(s)
		return ip == nil || ip.IsLoopback()
	})
	var c resolvConfig
	switch policy := pod.Spec.DNSPolicy; {
	case policy == corev1.DNSNone:
	case policy == corev1.DNSDefault, pod.Spec.HostNetwork && policy != corev1.DNSClusterFirstWithHostNet:
		c = hostCfg
	default:
		c = clusterConfig(pod.Namespace, server)
		c.searches = append(c.searches, hostCfg.searches...)
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		c.nameservers = append(c.nameservers, dc.Nameservers...)
		c.searches = append(c.searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			c.options = setOption(c.options, opt)
		}
	}
	c.nameservers = dedupe(c.nameservers)
	c.searches = dedupe(c.searches)
	c.bound()
	return c.bytes()
}

type resolvConfig struct {
	nameservers []string
	searches    []string
	options     []string
}

func clusterConfig(namespace string, server net.IP) resolvConfig {
	return resolvConfig{
		nameservers: []string{server.String()},
		searches:    []string{namespace + ".svc." + ClusterDomain, "svc." + ClusterDomain, ClusterDomain},
		options:     []string{ndotsOption},
	}
}

// parseResolvConf reads the nameserver, search (or domain) and options lines of a
// resolv.conf; the last search or domain line wins, as in glibc.
func parseResolvConf(b []byte) resolvConfig {
	var c resolvConfig
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			c.nameservers = append(c.nameservers, f[1])
		case "search", "domain":
			c.searches = slices.Clone(f[1:])
		case "options":
			for _, o := range f[1:] {
				c.options = setOption(c.options, o)
			}
		}
	}
	return c
}

// setOption sets option o ("name" or "name:value"), replacing one of the same name.
func setOption(opts []string, o string) []string {
	name, _, _ := strings.Cut(o, ":")
	for i, old := range opts {
		if n, _, _ := strings.Cut(old, ":"); n == name {
			opts[i] = o
			return opts
		}
	}
	return append(opts, o)
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		v = strings.TrimSpace(v)
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// bound cuts the configuration to the limits resolvers honour.
func (c *resolvConfig) bound() {
	if len(c.nameservers) > maxNameservers {
		c.nameservers = c.nameservers[:maxNameservers]
	}
	if len(c.searches) > maxSearchDomains {
		c.searches = c.searches[:maxSearchDomains]
	}
	for len(c.searches) > 0 && len(strings.Join(c.searches, " ")) > maxSearchChars {
		c.searches = c.searches[:len(c.searches)-1]
	}
}

func (c resolvConfig) bytes() []byte {
	var b bytes.Buffer
	for _, ns := range c.nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(c.searches) > 0 {
		b.WriteString("search " + strings.Join(c.searches, " ") + "\n")
	}
	if len(c.options) > 0 {
		b.WriteString("options " + strings.Join(c.options, " ") + "\n")
	}
	return b.Bytes()
}

// hostResolvConfPaths are where HostResolvConf looks, in order: systemd-resolved's list of
// the upstream servers it uses, then the host's own file.
var hostResolvConfPaths = []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"}

// Host is the host's resolver configuration as a pod may use it (dnsPolicy
// Default): the first of /run/systemd/resolve/resolv.conf (systemd-resolved's upstream
// servers) and /etc/resolv.conf that names a nameserver other than loopback, which a pod's
// network namespace cannot reach (systemd-resolved's 127.0.0.53); nil when none does. Pass
// it to PodResolvConf.
func Host() []byte {
	for _, p := range hostResolvConfPaths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, ns := range parseResolvConf(b).nameservers {
			if ip := net.ParseIP(ns); ip != nil && !ip.IsLoopback() {
				return b
			}
		}
	}
	return nil
}
