package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-run/gantry/internal/freeport"
)

// startRegistry starts an embedded registry on addr (a free loopback port when empty),
// storing under dir, and stops it when the test ends.
func startRegistry(t *testing.T, dir, addr string) *Registry {
	t.Helper()
	if addr == "" {
		ports, err := freeport.Get(1)
		if err != nil {
			t.Fatal(err)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	}
	reg, err := NewRegistry(RegistryOptions{Addr: addr, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRegistry(t, reg)
	stops.Store(reg, stop)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping registry: %v", err)
		}
	})
	return reg
}

// stops holds the stop func of each registry startRegistry started.
var stops sync.Map

// stopRegistry stops a registry startRegistry started, before the test ends.
func stopRegistry(t *testing.T, reg *Registry) {
	t.Helper()
	stop, ok := stops.Load(reg)
	if !ok {
		t.Fatal("stopRegistry: not started by startRegistry")
	}
	if err := stop.(func() error)(); err != nil {
		t.Fatal(err)
	}
}

// runRegistry starts reg, waits until it serves, and returns a func that stops it and says
// how it ended. Stopping twice is harmless.
func runRegistry(t *testing.T, reg *Registry) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	select {
	case <-reg.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("starting registry: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("registry not ready after 30s")
	}
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", true},
		{"localhost:5000", true},
		{"[::1]:5000", true},
		{"0.0.0.0:5000", false},
		{":5000", false},
		{"10.0.0.1:5000", false},
		{"example.com:5000", false},
		{"127.0.0.1", false}, // no port
	} {
		err := CheckLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.addr)) {
			t.Errorf("CheckLoopback(%q) error %q does not name the address", tc.addr, err)
		}
	}
	if _, err := NewRegistry(RegistryOptions{Addr: "0.0.0.0:5000", Dir: t.TempDir()}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("NewRegistry(0.0.0.0:5000) = %v, want ErrNotLoopback", err)
	}
}

func TestValidRef(t *testing.T) {
	for _, tc := range []struct {
		repo, target string
		ok           bool
	}{
		{"hello", "latest", true},
		{"gantry/test/hello", "v1.2", true},
		{"hello", "sha256:" + strings.Repeat("a", 64), true},
		{"a/..", "latest", false},
		{"..", "latest", false},
		{"Hello", "latest", false},
		{"hello", "../x", false},
		{"hello", "sha256:zz", false},
		{"_manifests", "latest", false},
	} {
		if err := validRef(tc.repo, tc.target); (err == nil) != tc.ok {
			t.Errorf("validRef(%q, %q) = %v, want ok=%v", tc.repo, tc.target, err, tc.ok)
		}
	}
}

// TestRegistryKeepsManifestsAcrossRestart pushes an image, restarts the registry on the
// same directory and address, and checks the tag still resolves to the same digest.
func TestRegistryKeepsManifestsAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	reg := startRegistry(t, dir, "")
	addr := reg.Addr()
	ref := addr + "/gantry/test/hello:latest"
	h, err := BuildGoImage(ctx, filepath.Join("..", "..", "test", "images", "hello"), ref)
	if err != nil {
		t.Fatal(err)
	}
	stopRegistry(t, reg)

	startRegistry(t, dir, addr)
	for _, s := range []string{ref, addr + "/gantry/test/hello@" + h.String()} {
		r, err := ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("after restart, getting %s: %v", s, err)
		}
		if desc.Digest != h {
			t.Errorf("after restart, %s = %s, want %s", s, desc.Digest, h)
		}
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers = %d, %v; want 1", len(layers), err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatalf("after restart, reading layer blob: %v", err)
		}
		_ = rc.Close()
	}
}

func TestRegistryLimitsManifestSize(t *testing.T) {
	reg, err := NewRegistry(RegistryOptions{Addr: "127.0.0.1:0", Dir: t.TempDir(), MaxManifestBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRegistry(t, reg)
	defer func() { _ = stop() }()
	req, _ := http.NewRequest(http.MethodPut, "http://"+reg.Addr()+"/v2/big/manifests/latest", bytes.NewReader(bytes.Repeat([]byte("x"), 1000)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
}
