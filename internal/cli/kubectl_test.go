package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gantry-run/gantry/internal/apiservers"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/freeport"
)

// TestKubectlFailover: with its own server down, gantry kubectl goes through a load balancer
// over the servers in <data-dir>/api-servers (a real TLS server here, verified through it);
// with its own server up, or a --server of the user's, the arguments are left alone.
func TestKubectlFailover(t *testing.T) {
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "other") }))
	defer other.Close()
	ports, err := freeport.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	writeKubeconfig := func(server string) {
		t.Helper()
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["gantry"] = &clientcmdapi.Cluster{Server: server}
		cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{}
		cfg.Contexts["gantry"] = &clientcmdapi.Context{Cluster: "gantry", AuthInfo: "admin"}
		cfg.CurrentContext = "gantry"
		if err := clientcmd.WriteToFile(*cfg, filepath.Join(dataDir, datadir.AdminKubeconfig)); err != nil {
			t.Fatal(err)
		}
	}
	down := "https://127.0.0.1:" + strconv.Itoa(ports[0])
	writeKubeconfig(down)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := []string{"get", "nodes"}

	// No list of other servers: nothing to fail over to.
	if got := failover(ctx, dataDir, args, io.Discard); len(got) != 2 {
		t.Errorf("without %s the args became %v", apiservers.FileName, got)
	}
	// A list of servers that do not answer either: kubectl fails as it would without it.
	if err := apiservers.WriteFile(filepath.Join(dataDir, apiservers.FileName), []string{"127.0.0.1:" + strconv.Itoa(ports[1])}); err != nil {
		t.Fatal(err)
	}
	if got := failover(ctx, dataDir, args, io.Discard); len(got) != 2 {
		t.Errorf("with no other server answering the args became %v", got)
	}
	if err := apiservers.WriteFile(filepath.Join(dataDir, apiservers.FileName), []string{"127.0.0.1:" + strconv.Itoa(ports[1]), strings.TrimPrefix(other.URL, "https://")}); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	got := failover(ctx, dataDir, args, &said)
	if len(got) != 3 || !strings.HasPrefix(got[0], "--server=https://127.0.0.1:") || got[1] != "get" {
		t.Fatalf("with its server down the args are %v", got)
	}
	if !strings.Contains(said.String(), down+" does not answer") || strings.Contains(said.String(), strconv.Itoa(ports[1])) {
		t.Errorf("gantry kubectl said %q", said.String())
	}
	client := other.Client()
	resp, err := client.Get(strings.TrimPrefix(got[0], "--server="))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "other" {
		t.Errorf("through the load balancer: %q, want the other server's answer", body)
	}
	if got := failover(ctx, dataDir, []string{"--server=https://10.0.0.9:6443", "get", "nodes"}, io.Discard); len(got) != 3 || got[0] != "--server=https://10.0.0.9:6443" {
		t.Errorf("a --server of the user's became %v", got)
	}

	// Its own server up: nothing changes.
	writeKubeconfig(other.URL)
	if got := failover(ctx, dataDir, args, io.Discard); len(got) != 2 {
		t.Errorf("with its server up the args became %v", got)
	}
}
