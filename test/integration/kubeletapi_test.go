package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/testenv"
)

// clientCerts issues client certificates of the cluster CA for users, in a directory of the
// test's own: what anyone holding a certificate of the cluster CA could present.
func clientCerts(t *testing.T, env *testenv.Env, users ...pki.Client) pki.Bundle {
	t.Helper()
	own := pki.Bundle{Dir: t.TempDir()}
	cluster := pki.Bundle{Dir: filepath.Join(env.DataDir, datadir.PKIDir)}
	for _, f := range [][2]string{{cluster.CACert(), own.CACert()}, {cluster.CAKey(), own.CAKey()}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := own.Ensure(pki.Options{}, users...); err != nil {
		t.Fatal(err)
	}
	return own
}

// kubeletOf is the InternalIP of the node pod runs on, and its kubelet API's port.
func kubeletOf(t *testing.T, env *testenv.Env, pod *corev1.Pod) (ip, port string) {
	t.Helper()
	node, err := env.Client.CoreV1().Nodes().Get(context.Background(), pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	return ip, strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))
}

// kubeletConfig is a client of the kubelet API at kubelet (host:port), as user.
func kubeletConfig(kubelet string, certs pki.Bundle, user pki.Client) *rest.Config {
	return &rest.Config{Host: "https://" + kubelet, TLSClientConfig: rest.TLSClientConfig{
		CertFile: certs.ClientCert(user), KeyFile: certs.ClientKey(user), CAFile: certs.CACert(),
		// The kubelet API serves the API server's certificate.
		ServerName: "localhost",
	}}
}

// execURL is the kubelet API's exec of command in the container.
func execURL(kubelet, ns, pod, container string, command []string) *url.URL {
	q := url.Values{"output": {"1"}, "error": {"1"}, "command": command}
	return &url.URL{Scheme: "https", Host: kubelet, Path: "/exec/" + ns + "/" + pod + "/" + container, RawQuery: q.Encode()}
}

// kubeletExec runs command in the container through the kubelet API, as user.
func kubeletExec(ctx context.Context, kubelet string, certs pki.Bundle, user pki.Client, ns, pod, container string, command ...string) error {
	exec, err := remotecommand.NewSPDYExecutor(kubeletConfig(kubelet, certs, user), "POST", execURL(kubelet, ns, pod, container, command))
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out}); err != nil {
		return fmt.Errorf("%w: %s", err, out.String())
	}
	return nil
}

// kubeletExecStatus is the status the kubelet API answers an exec request with, as user,
// without the upgrade to a stream.
func kubeletExecStatus(t *testing.T, kubelet string, certs pki.Bundle, user pki.Client, ns, pod, container string, command ...string) int {
	t.Helper()
	client, err := rest.HTTPClientFor(kubeletConfig(kubelet, certs, user))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(execURL(kubelet, ns, pod, container, command).String(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestKubeletAPIAuthorisesEachCaller calls the node's kubelet API directly with certificates
// of the cluster CA: a user the API server does not grant nodes/proxy cannot exec, one it
// grants can; a container that is not the pod's is not found; the API server's own exec still
// works.
func TestKubeletAPIAuthorisesEachCaller(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	tenant := pki.Client{Name: "tenant", User: "tenant-" + ns, Groups: []string{"tenants"}}
	operator := pki.Client{Name: "operator", User: "operator-" + ns}
	certs := clientCerts(t, env, tenant, operator)

	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-proxy-" + ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "node-proxy-" + ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: operator.User}}}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})

	createPod(t, env, ns, podWith("rt", corev1.Container{Name: "rt", Image: env.Image(t, "runtime")}))
	pod := waitPod(t, env, ns, "rt", "running", 90*time.Second, running)
	nodeIP, port := kubeletOf(t, env, pod)
	kubelet := net.JoinHostPort(nodeIP, port)
	check := []string{"/app", "-check-file", "/etc/hostname"}

	if code := kubeletExecStatus(t, kubelet, certs, tenant, ns, "rt", "rt", check...); code != http.StatusForbidden {
		t.Errorf("exec as a user without nodes/proxy: %d, want 403", code)
	}
	if err := kubeletExec(ctx, kubelet, certs, tenant, ns, "rt", "rt", check...); err == nil {
		t.Error("exec as a user without nodes/proxy ran")
	}
	if err := kubeletExec(ctx, kubelet, certs, operator, ns, "rt", "rt", check...); err != nil {
		t.Errorf("exec as a user with nodes/proxy: %v", err)
	}
	if code := kubeletExecStatus(t, kubelet, certs, operator, ns, "rt", "not-rt", check...); code != http.StatusNotFound {
		t.Errorf("exec in a container the pod does not have: %d, want 404", code)
	}

	// kubectl's way: through the API server, which calls the kubelet API as its own client.
	req := env.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("rt").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "rt", Command: check, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(env.Config, "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out}); err != nil {
		t.Errorf("exec through the API server: %v: %s", err, out.String())
	}
}
