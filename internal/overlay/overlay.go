// Package overlay carries pod traffic between nodes: flannel's vxlan backend, embedded as a
// library the way k3s embeds it. Each node has one vxlan device (flannel.<VNI>); flannel's
// kube subnet manager writes the node's VTEP MAC and public IP as annotations on its Node
// (flannel.alpha.coreos.com/*) and, for every other Node with a spec.podCIDR (given by the
// controller-manager's node IPAM), adds a route to that range through the device, a
// neighbour entry for the remote VTEP and an FDB entry sending its MAC to the remote node's
// public IP. The node's own range stays on its pod bridge.
//
// flannel reads the node's name from the NODE_NAME environment variable and its client from a
// kubeconfig file: Start sets the one and writes the other, so one process runs one overlay.
package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flannel-io/flannel/pkg/backend"
	// The vxlan backend registers itself with flannel's backend manager.
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Defaults of the vxlan backend: Linux's and flannel's.
const (
	DefaultVNI  = 1
	DefaultPort = 8472
	// AnnotationPrefix is the prefix of flannel's Node annotations (k3s and flannel's own).
	AnnotationPrefix = "flannel.alpha.coreos.com"
)

// Options configure a node's overlay.
type Options struct {
	// NodeName is the node's Node; it must have a spec.podCIDR inside ClusterCIDR.
	NodeName string
	// ClusterCIDR is the range of every node's pods (gantry server's --cluster-cidr).
	ClusterCIDR string
	// PublicIP is the address other nodes send this node's vxlan packets to; the interface
	// that holds it carries them.
	PublicIP net.IP
	// VNI and Port are the vxlan network identifier and UDP port; every node uses the same.
	VNI, Port int
	// RESTConfig is the client flannel watches Nodes and annotates its own with.
	RESTConfig *rest.Config
	// StateDir holds the kubeconfig and the net-conf flannel reads.
	StateDir string
	Logger   *slog.Logger
}

// Validate names the flag of each wrong field.
func (o Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("overlay: node name: required"))
	}
	if ip, n, err := net.ParseCIDR(o.ClusterCIDR); err != nil || ip.To4() == nil || !ip.Equal(n.IP) {
		errs = append(errs, fmt.Errorf("--cluster-cidr: %q is not an IPv4 network address with a prefix (10.42.0.0/16)", o.ClusterCIDR))
	}
	if o.PublicIP == nil || o.PublicIP.To4() == nil || o.PublicIP.IsUnspecified() {
		errs = append(errs, fmt.Errorf("--address: %v: the overlay needs the node's IPv4 address, which other nodes reach", o.PublicIP))
	}
	if o.VNI < 1 || o.VNI > 1<<24-1 {
		errs = append(errs, fmt.Errorf("--vxlan-vni: %d is not a VXLAN network identifier (1-16777215)", o.VNI))
	}
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--vxlan-port: %d is not a port", o.Port))
	}
	if o.RESTConfig == nil {
		errs = append(errs, errors.New("overlay: a REST config is required"))
	}
	if o.StateDir == "" {
		errs = append(errs, errors.New("overlay: a state dir is required"))
	}
	return errors.Join(errs...)
}

// Overlay is a node's part of the overlay: a lifecycle part that runs flannel.
type Overlay struct {
	opts  Options
	log   *slog.Logger
	ready chan struct{}
}

// New checks opts; nothing changes on the host before Start.
func New(opts Options) (*Overlay, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Overlay{opts: opts, log: opts.Logger.With("component", "overlay"), ready: make(chan struct{})}, nil
}

// Ready is closed once the vxlan device is up and the node's annotations are written.
func (o *Overlay) Ready() <-chan struct{} { return o.ready }

// DeviceName is the vxlan device flannel makes for vni.
func DeviceName(vni int) string { return fmt.Sprintf("flannel.%d", vni) }

// NetConf is flannel's network configuration for a cluster range and the vxlan backend.
func NetConf(clusterCIDR string, vni, port int) ([]byte, error) {
	return json.Marshal(map[string]any{
		"Network":    clusterCIDR,
		"EnableIPv4": true,
		"Backend":    map[string]any{"Type": "vxlan", "VNI": vni, "Port": port},
	})
}

// Start runs flannel until ctx ends: the subnet manager's Node informer, the node's lease
// (its annotations) and the vxlan network's loop over the other nodes. The device and its
// routes stay after the stop, as flannel leaves them, so the pods keep their network across
// a restart.
func (o *Overlay) Start(ctx context.Context) error {
	if err := os.MkdirAll(o.opts.StateDir, 0o700); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	kubeconfig := filepath.Join(o.opts.StateDir, "kubeconfig")
	if err := WriteKubeconfig(kubeconfig, o.opts.RESTConfig); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	conf, err := NetConf(o.opts.ClusterCIDR, o.opts.VNI, o.opts.Port)
	if err != nil {
		return err
	}
	netConf := filepath.Join(o.opts.StateDir, netConfFile)
	if err := os.WriteFile(netConf, conf, 0o600); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	iface, err := interfaceWith(o.opts.PublicIP)
	if err != nil {
		return err
	}
	if err := o.annotate(ctx); err != nil {
		return err
	}
	// flannel's subnet manager takes the node's name from the environment, as in a pod.
	if err := os.Setenv("NODE_NAME", o.opts.NodeName); err != nil {
		return err
	}
	sm, err := kube.NewSubnetManager(ctx, "", kubeconfig, AnnotationPrefix, netConf, false)
	if err != nil {
		return fmt.Errorf("overlay: flannel's kube subnet manager: %w", err)
	}
	config, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	ext := &backend.ExternalInterface{Iface: iface, IfaceAddr: o.opts.PublicIP.To4(), ExtAddr: o.opts.PublicIP.To4()}
	be, err := backend.NewManager(ctx, sm, ext).GetBackend(config.BackendType)
	if err != nil {
		return fmt.Errorf("overlay: flannel backend %s: %w", config.BackendType, err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	network, err := be.RegisterNetwork(ctx, &wg, config)
	if err != nil {
		return fmt.Errorf("overlay: registering node %s with flannel (its Node needs a spec.podCIDR in %s): %w", o.opts.NodeName, o.opts.ClusterCIDR, err)
	}
	lease := network.Lease()
	o.log.Info("overlay up", "device", DeviceName(o.opts.VNI), "subnet", lease.Subnet.String(), "public_ip", o.opts.PublicIP.String(), "port", o.opts.Port)
	wg.Add(1)
	go func() {
		defer wg.Done()
		network.Run(ctx)
	}()
	close(o.ready)
	<-ctx.Done()
	return nil
}

// OverlayAnnotation marks a Node whose overlay Gantry runs.
const OverlayAnnotation = "gantry.dev/overlay"

// nodeWaitTimeout bounds the wait for the node's own Node.
const nodeWaitTimeout = time.Minute

// annotate gives the Node an annotation of Gantry's before flannel reads it: flannel v0.28's
// subnet manager writes its own into the Node's annotation map without making one, and
// panics on a Node that has none yet.
func (o *Overlay) annotate(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(o.opts.RESTConfig)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	patch := []byte(`{"metadata":{"annotations":{"` + OverlayAnnotation + `":"flannel-vxlan"}}}`)
	ctx, cancel := context.WithTimeout(ctx, nodeWaitTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := client.CoreV1().Nodes().Patch(ctx, o.opts.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("overlay: annotating node %s: %w", o.opts.NodeName, err)
		case <-tick.C:
		}
	}
}

// Grant is the server's part of the overlay: it lets every node read all Nodes, Services,
// EndpointSlices and Knative Ingresses (ClusterRole and binding NodeReaderRole to the group
// system:nodes). The Node authorizer lets a node read only its own Node, and flannel watches
// them all, as k3s grants its flannel; an agent's kube-proxy watches Services and
// EndpointSlices, and its cluster DNS those and the Ingresses' cluster hosts.
type Grant struct {
	client kubernetes.Interface
	ready  chan struct{}
}

// NewGrant returns the part, acting through client (Gantry's identity).
func NewGrant(client kubernetes.Interface) *Grant {
	return &Grant{client: client, ready: make(chan struct{})}
}

// Ready is closed once the role and its binding are written.
func (g *Grant) Ready() <-chan struct{} { return g.ready }

// Start writes the role and its binding, then waits for ctx to end.
func (g *Grant) Start(ctx context.Context) error {
	if err := EnsureNodeReader(ctx, g.client); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	close(g.ready)
	<-ctx.Done()
	return nil
}

// NodeReaderRole names the ClusterRole and ClusterRoleBinding that let nodes read all Nodes,
// Services, EndpointSlices and Knative Ingresses.
const NodeReaderRole = "gantry:node-network-reader"

// EnsureNodeReader creates or updates NodeReaderRole and its binding to system:nodes.
func EnsureNodeReader(ctx context.Context, client kubernetes.Interface) error {
	rbac := client.RbacV1()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: NodeReaderRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes", "services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			// The cluster hosts of Knative Routes, which an agent's cluster DNS answers.
			{APIGroups: []string{"networking.internal.knative.dev"}, Resources: []string{"ingresses"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = rbac.ClusterRoles().Update(ctx, role, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating ClusterRole %s: %w", NodeReaderRole, err)
		}
	} else if err != nil {
		return fmt.Errorf("creating ClusterRole %s: %w", NodeReaderRole, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: NodeReaderRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NodeReaderRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}},
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = rbac.ClusterRoleBindings().Update(ctx, binding, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating ClusterRoleBinding %s: %w", NodeReaderRole, err)
		}
	} else if err != nil {
		return fmt.Errorf("creating ClusterRoleBinding %s: %w", NodeReaderRole, err)
	}
	return nil
}

// interfaceWith is the interface that holds ip.
func interfaceWith(ip net.IP) (*net.Interface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("overlay: listing interfaces: %w", err)
	}
	for i := range ifaces {
		addrs, err := ifaces[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return &ifaces[i], nil
			}
		}
	}
	return nil, fmt.Errorf("--address: no interface of this machine has %s (the overlay sends through it)", ip)
}

// WriteKubeconfig writes a kubeconfig file for c: its server, CA and client certificate,
// inline.
func WriteKubeconfig(path string, c *rest.Config) error {
	ca, err := fileOrData(c.CAFile, c.CAData)
	if err != nil {
		return err
	}
	cert, err := fileOrData(c.CertFile, c.CertData)
	if err != nil {
		return err
	}
	key, err := fileOrData(c.KeyFile, c.KeyData)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gantry"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: ca, TLSServerName: c.ServerName}
	cfg.AuthInfos["node"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key, Token: c.BearerToken}
	cfg.Contexts["gantry"] = &clientcmdapi.Context{Cluster: "gantry", AuthInfo: "node"}
	cfg.CurrentContext = "gantry"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

func fileOrData(file string, data []byte) ([]byte, error) {
	if len(data) > 0 || file == "" {
		return data, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return b, nil
}
