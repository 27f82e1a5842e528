package join

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// TestEnsureServerToken: a server of a cluster keeps a server token (agents' and servers'
// groups) beside the agent token, which it leaves in place, and the servers' bootstrap Secret
// that only the servers' group may read; a second server with no token files takes the
// cluster's tokens instead of making its own.
func TestEnsureServerToken(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	ca := testCA(t)
	boot := ServerBootstrap{Files: map[string][]byte{"ca.crt": ca}, EtcdEndpoints: []string{"https://10.0.0.1:2379"}}
	opts := func(dir string) EnsureOptions {
		return EnsureOptions{TokenFile: filepath.Join(dir, "token"), ServerTokenFile: filepath.Join(dir, "server-token"),
			Server: "https://10.0.0.1:6443", CA: ca, Clustered: true,
			ServerBootstrap: func() (ServerBootstrap, error) { return boot, nil }}
	}
	first := t.TempDir()
	agentTok, err := Ensure(ctx, client, opts(first))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(first, "server-token"))
	if err != nil {
		t.Fatal(err)
	}
	serverTok, err := ParseToken(string(b))
	if err != nil || serverTok.ID == agentTok.ID {
		t.Fatalf("server token %q (%v): want a token of its own", b, err)
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	for _, tc := range []struct {
		tok    Token
		groups string
	}{{agentTok, AgentGroup}, {serverTok, AgentGroup + "," + ServerGroup}} {
		s, err := secrets.Get(ctx, bootstrapapi.BootstrapTokenSecretPrefix+tc.tok.ID, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("token %s: %v", tc.tok.ID, err)
		}
		if got := string(s.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]); got != tc.groups {
			t.Errorf("token %s: groups %q, want %q", tc.tok.ID, got, tc.groups)
		}
	}
	s, err := secrets.Get(ctx, ServerBootstrapSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got ServerBootstrap
	if err := json.Unmarshal(s.Data[serverBootstrapKey], &got); err != nil || string(got.Files["ca.crt"]) != string(ca) || got.EtcdEndpoints[0] != boot.EtcdEndpoints[0] {
		t.Errorf("the bootstrap Secret holds %+v (%v)", got, err)
	}
	binding, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Get(ctx, serverBootstrapReader, metav1.GetOptions{})
	if err != nil || len(binding.Subjects) != 1 || binding.Subjects[0].Name != ServerGroup {
		t.Errorf("the bootstrap Secret's reader binding %+v (%v): want the servers' group only", binding, err)
	}
	role, err := client.RbacV1().Roles(metav1.NamespaceSystem).Get(ctx, serverBootstrapReader, metav1.GetOptions{})
	if err != nil || len(role.Rules) != 1 || strings.Join(role.Rules[0].ResourceNames, ",") != ServerBootstrapSecret {
		t.Errorf("the bootstrap Secret's reader role %+v (%v): want that one Secret", role, err)
	}

	second := t.TempDir()
	again, err := Ensure(ctx, client, opts(second))
	if err != nil || again != agentTok {
		t.Fatalf("the second server's agent token %v (%v), want the cluster's %v", again, err, agentTok)
	}
	if b, err := os.ReadFile(filepath.Join(second, "server-token")); err != nil || strings.TrimSpace(string(b)) != serverTok.String() {
		t.Errorf("the second server's server token %q (%v), want the cluster's", b, err)
	}
}
