package controlplane

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// serviceAccountIssuer is the issuer of service-account tokens, as in kubeadm clusters.
const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// apiServerArgs are the kube-apiserver flags for cfg.
func apiServerArgs(cfg Config, certs pki.Bundle) []string {
	args := []string{
		"--etcd-servers=" + EtcdClientURL(cfg.EtcdClientPort),
		"--etcd-cafile=" + certs.EtcdCACert(),
		"--etcd-certfile=" + certs.EtcdClientCert(),
		"--etcd-keyfile=" + certs.EtcdClientKey(),
		"--bind-address=" + cfg.BindAddress,
		fmt.Sprintf("--secure-port=%d", cfg.HTTPSPort),
		fmt.Sprintf("--watch-cache=%t", cfg.WatchCache),
		"--tls-cert-file=" + certs.ServingCert(),
		"--tls-private-key-file=" + certs.ServingKey(),
		"--client-ca-file=" + certs.CACert(),
		"--kubelet-client-certificate=" + certs.ClientCert(pki.APIServerKubeletClient),
		"--kubelet-client-key=" + certs.ClientKey(pki.APIServerKubeletClient),
		// Kubelets' serving certificates come from the cluster CA (the server's node's from
		// its PKI, agents' by CSR): the API server checks them before it sends exec or logs.
		"--kubelet-certificate-authority=" + certs.CACert(),
		// The serverless node's name does not resolve; its address does.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--authorization-mode=Node,RBAC",
		// Agents join with a bootstrap token (internal/join): it may only ask for a node's
		// certificate.
		"--enable-bootstrap-token-auth=true",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + certs.ServiceAccountPub(),
		"--service-account-signing-key-file=" + certs.ServiceAccountKey(),
		"--service-cluster-ip-range=" + cfg.ServiceCIDR,
		// Only the health checks and the version answer anonymous requests.
		"--authentication-config=" + policyPath(cfg, authenticationConfigFile),
		// NodeRestriction holds each node to its own Node and pods; Pod Security enforces
		// DefaultPodSecurityLevel outside PodSecurityExempt (admission.yaml).
		"--enable-admission-plugins=NodeRestriction,PodSecurity",
		"--admission-control-config-file=" + policyPath(cfg, admissionConfigFile),
		// A privileged container is refused by the API, naming the field
		// (spec.containers[0].securityContext.privileged); the serverless node refuses one
		// too, for clusters that allow them.
		"--allow-privileged=false",
		"--profiling=false",
		// Stop listening only once in-flight requests have drained; the listener then closes
		// what is left at once (see closingListener).
		"--shutdown-send-retry-after=true",
		"--cert-dir=" + certs.Dir,
		// The aggregator proxies aggregated APIs (metrics.k8s.io) as front-proxy-client, and
		// dials an APIService's endpoint, not its ClusterIP: the metrics server is this
		// process, and kube-proxy may be off.
		"--requestheader-client-ca-file=" + certs.FrontProxyCACert(),
		"--requestheader-allowed-names=" + pki.FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + certs.FrontProxyClientCert(),
		"--proxy-client-key-file=" + certs.FrontProxyClientKey(),
		"--enable-aggregator-routing=true",
	}
	if cfg.AdvertiseAddress != "" {
		args = append(args, "--advertise-address="+cfg.AdvertiseAddress)
	}
	return args
}

// servingHosts are the names and addresses the API server's certificate covers.
func servingHosts(cfg Config) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if ip := net.ParseIP(cfg.BindAddress); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, cfg.BindAddress)
	}
	if cfg.AdvertiseAddress != "" {
		hosts = append(hosts, cfg.AdvertiseAddress)
	}
	if ip, err := firstServiceIP(cfg.ServiceCIDR); err == nil {
		hosts = append(hosts, ip.String())
	}
	return hosts
}

// firstServiceIP is the ClusterIP of the "kubernetes" Service: the first address of the range.
func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	ip[len(ip)-1]++
	return ip, nil
}

// runAPIServer parses args into kube-apiserver's options and runs it until ctx ends. Without
// the watch cache, watches get their bookmarks from etcd (bookmarks.go).
func runAPIServer(ctx context.Context, args []string, watchCache bool) error {
	s := apiserveroptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-apiserver flags: %w", err)
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	// The API server's own listener, so that stopping it closes what is left at once.
	ss := s.SecureServing.SecureServingOptions
	ln, _, err := genericoptions.CreateListener(ss.BindNetwork,
		net.JoinHostPort(ss.BindAddress.String(), strconv.Itoa(ss.BindPort)), net.ListenConfig{})
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	s.SecureServing.Listener = newClosingListener(ln)
	running := false
	defer func() {
		if !running {
			_ = ln.Close()
		}
	}()
	// The API server's loopback clients would log warnings about their own requests.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	running = true
	// What apiserverapp.Run does, with the storage wrapped between the config and the server.
	if completed.InformerName == nil {
		if completed.InformerName, err = cache.NewInformerName("kube-apiserver"); err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
	}
	config, err := apiserverapp.NewConfig(completed)
	if err != nil {
		return fmt.Errorf("kube-apiserver config: %w", err)
	}
	if !watchCache {
		bookmarkingStorages(config)
	}
	completedConfig, err := config.Complete()
	if err != nil {
		return fmt.Errorf("kube-apiserver config: %w", err)
	}
	server, err := apiserverapp.CreateServerChain(completedConfig)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return prepared.Run(ctx)
}
