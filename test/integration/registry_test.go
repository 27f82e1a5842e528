package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/client-go/rest"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/testenv"
)

// TestRegistryServesNodesOnly: the server's registry for nodes (--registry-node-port) answers
// a node's client certificate, issued by the cluster CA as agents get theirs, and a node pulls
// an image pushed to the loopback registry through it (image.Mirror); a client without a
// certificate is refused in the handshake, the admin's certificate gets 403, and a node may not
// push.
func TestRegistryServesNodesOnly(t *testing.T) {
	env := testenv.Get(t)
	if env.Server.RegistryNodes == nil {
		t.Fatal("the server serves no registry for nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	layer := static.NewLayer([]byte("not a tarball, and no pod runs it"), types.OCIUncompressedLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := image.ParseReference(env.RegistryHost + "/registry-nodes/only:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}

	tlsOf := func(cfg *rest.Config) *tls.Config {
		t.Helper()
		c, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	nodeCfg, err := env.ControlPlane.NodeRESTConfig("registry-reader")
	if err != nil {
		t.Fatal(err)
	}
	nodeTLS, adminTLS := tlsOf(nodeCfg), tlsOf(env.Config)
	anonymous := tlsOf(rest.AnonymousClientConfig(env.Config))
	base := "https://" + env.Server.RegistryNodes.Addr()
	do := func(tc *tls.Config, method, path string) (int, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader("{}"))
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	manifest := "/v2/registry-nodes/only/manifests/v1"
	if code, err := do(anonymous, http.MethodGet, manifest); err == nil {
		t.Errorf("without a client certificate: GET %s = %d, want the handshake refused", manifest, code)
	}
	if code, err := do(adminTLS, http.MethodGet, manifest); err != nil || code != http.StatusForbidden {
		t.Errorf("the admin's certificate: GET %s = %d %v, want 403 (nodes only)", manifest, code, err)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, manifest, http.StatusOK},
		{http.MethodGet, "/v2/registry-nodes/only/blobs/" + blob.String(), http.StatusOK},
		{http.MethodPut, manifest, http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/registry-nodes/only/blobs/uploads/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v2/_catalog", http.StatusForbidden},
	} {
		if code, err := do(nodeTLS, c.method, c.path); err != nil || code != c.want {
			t.Errorf("a node's %s %s = %d %v, want %d", c.method, c.path, code, err, c.want)
		}
	}

	// A node's pull of the image through a mirror, for a registry name nothing on this
	// machine answers: only the registry for nodes can have served it.
	ports, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("127.0.0.1:%d", ports[0])
	m := &image.Mirror{Registry: name, TLS: nodeTLS, Endpoints: func() []string { return []string{env.Server.RegistryNodes.Addr()} }}
	mirrored, err := image.ParseReference(name + "/registry-nodes/only:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(mirrored, remote.WithContext(ctx), remote.WithTransport(m))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got.Digest(); err != nil || d != digest {
		t.Errorf("the image through the mirror has digest %v (%v), want %v", d, err, digest)
	}
}
