package kubeproxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/internal/podnet"
)

func validOptions(t *testing.T) Options {
	return Options{
		RESTConfig:  &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAFile: "/pki/ca.crt", CertFile: "/pki/c.crt", KeyFile: "/pki/c.key"}},
		Kubeconfig:  filepath.Join(t.TempDir(), "kubeconfigs", "kube-proxy.yaml"),
		NodeName:    "gantry",
		ClusterCIDR: "10.244.0.0/16",
		LockPath:    filepath.Join(t.TempDir(), "kube-proxy.lock"),
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no REST config", func(o *Options) { o.RESTConfig = nil }, "REST config"},
		{"no node", func(o *Options) { o.NodeName = "" }, "node name"},
		{"bad cluster CIDR", func(o *Options) { o.ClusterCIDR = "10.244.0.0" }, "cluster CIDR"},
		{"bad metrics address", func(o *Options) { o.MetricsAddr = "10249" }, "metrics address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(t)
			tc.change(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one about %s", err, tc.want)
			}
		})
	}
}

func TestOptionsAreKubeProxysOwn(t *testing.T) {
	p, err := New(validOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(p.args(), " ")
	for _, want := range []string{
		"--proxy-mode=nftables", "--hostname-override=gantry", "--cluster-cidr=10.244.0.0/16",
		"--healthz-port=0", "--metrics-bind-address=127.0.0.1:10249", "--conntrack-max-per-core=0",
		"--oom-score-adj=" + strconv.Itoa(oomScoreAdj()),
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	// kube-proxy's own flag parsing, completion and validation accept them.
	if _, err := p.options(); err != nil {
		t.Errorf("options: %v", err)
	}
}

func TestKubeconfig(t *testing.T) {
	o := validOptions(t)
	if err := writeKubeconfig(o.Kubeconfig, o.RESTConfig, "https://127.0.0.1:40000", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	k, err := clientcmd.LoadFromFile(o.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster, user := k.Clusters[k.Contexts[k.CurrentContext].Cluster], k.AuthInfos[k.Contexts[k.CurrentContext].AuthInfo]
	if cluster.Server != "https://127.0.0.1:40000" || cluster.TLSServerName != "127.0.0.1" || cluster.CertificateAuthority != "/pki/ca.crt" || user.ClientCertificate != "/pki/c.crt" || user.ClientKey != "/pki/c.key" {
		t.Errorf("kubeconfig reads back as %+v, %+v", cluster, user)
	}
	if fi, _ := os.Stat(o.Kubeconfig); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// holdLock takes the lock at path as another process would: through a file description of
// its own, which conflicts with this package's.
func holdLock(t *testing.T, path, holder string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(holder + "\n"); err != nil {
		t.Fatal(err)
	}
}

func TestLockIsOnePerHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "kube-proxy.lock")
	if _, err := lock(path, "/var/lib/gantry"); err != nil {
		t.Fatal(err)
	}
	if _, err := lock(path, "/var/lib/gantry"); err != nil {
		t.Fatalf("taking a held lock again: %v", err)
	}
	b, err := os.ReadFile(path)
	if want := "pid " + strconv.Itoa(os.Getpid()) + " data-dir /var/lib/gantry\n"; err != nil || string(b) != want {
		t.Errorf("lock file says %q (%v), want %q", b, err, want)
	}

	other := filepath.Join(t.TempDir(), "kube-proxy.lock")
	holdLock(t, other, "pid 1")
	holder, err := lock(other, "/var/lib/gantry")
	if !errors.Is(err, errLocked) || holder != "pid 1" {
		t.Errorf("a lock another process holds: %q, %v; want pid 1, errLocked", holder, err)
	}
}

// gantry cleanup removes kube-proxy's tables only when the lock is free and names its data dir.
func TestRemoveLeftovers(t *testing.T) {
	var removed []string
	removeTables = func(_ context.Context, tables ...string) error {
		removed = append(removed, tables...)
		return nil
	}
	t.Cleanup(func() { removeTables = podnet.RemoveTables })
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	held := filepath.Join(dir, "held.lock")
	holdLock(t, held, "pid 1 data-dir /data/a")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"never ran", filepath.Join(dir, "none.lock"), "no kube-proxy ran on this host"},
		{"running", held, "left in place: a running gantry (pid 1 data-dir /data/a) holds"},
		{"another data dir's", write("other.lock", "pid 7 data-dir /data/b\n"), "left in place: the last to write them was not /data/a (data dir: /data/b)"},
		{"a lock of an older gantry", write("old.lock", "pid 7\n"), "the last to write them was not /data/a (data dir: unknown)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			said, err := RemoveLeftovers(ctx, tc.path, "/data/a")
			if err != nil || !strings.Contains(said, tc.want) {
				t.Errorf("said %q, %v; want %q", said, err, tc.want)
			}
			if len(removed) > 0 {
				t.Errorf("removed %q", removed)
			}
		})
	}
	own := write("own.lock", "pid 7 data-dir /data/a\n")
	said, err := RemoveLeftovers(ctx, own, "/data/a")
	if err != nil || said != "removed kube-proxy's rules (nftables tables ip kube-proxy, ip6 kube-proxy)" {
		t.Errorf("its own rules: %q, %v", said, err)
	}
	if strings.Join(removed, ",") != "ip kube-proxy,ip6 kube-proxy" {
		t.Errorf("removed %q, want both of kube-proxy's tables", removed)
	}
	// The lock no longer names it: a second cleanup leaves the host alone.
	removed = nil
	if said, _ := RemoveLeftovers(ctx, own, "/data/a"); said != "no kube-proxy rules to remove: an earlier cleanup removed them" || len(removed) > 0 {
		t.Errorf("a second cleanup: %q, removed %q", said, removed)
	}
}

func TestStartWithoutTheLock(t *testing.T) {
	o := validOptions(t)
	holdLock(t, o.LockPath, "pid 1")

	// auto: runs without, ready at once, says so.
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Start(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	if p.Running() {
		t.Error("Running without the lock")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start after the stop: %v", err)
	}

	// on: refuses, naming the flag.
	o.Required = true
	p, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "--kube-proxy=auto") {
		t.Errorf("Start with Required: err = %v, want a refusal naming --kube-proxy", err)
	}
}

func TestLockPathForThisNetns(t *testing.T) {
	st, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Skip("no /proc/self/ns/net")
	}
	got := LockPathForThisNetns()
	if st.Sys().(*syscall.Stat_t).Ino == initNetnsIno {
		if got != DefaultLockPath {
			t.Errorf("in the initial network namespace: %s, want %s", got, DefaultLockPath)
		}
		return
	}
	if got == "" {
		t.Error("no lock path")
	}
}
