package image

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBuildGoImages(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds every test image")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "")
	want := []string{"autoscale", "failing", "hello", "readiness", "runtime", "singlethreaded", "timeout"}
	refs := map[string]string{}
	for _, n := range want {
		refs[n] = reg.Addr() + "/gantry/test/" + n + ":latest"
	}
	got, err := BuildGoImages(ctx, "../../test/images", refs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("pushed %v, want %v", names, want)
	}
	s := newStore(t, t.TempDir())
	for _, n := range want {
		resolved, err := s.Resolve(ctx, refs[n])
		if err != nil || !strings.HasSuffix(resolved, "@"+got[n].String()) {
			t.Errorf("%s: Resolve = %q, %v; want the digest %s", n, resolved, err, got[n])
		}
	}
	// Images are reproducible: building hello again gives the same digest.
	if h, err := BuildGoImage(ctx, "../../test/images/hello", refs["hello"]); err != nil || h != got["hello"] {
		t.Errorf("rebuilt hello = %s, %v; want %s", h, err, got["hello"])
	}
}

func TestConcurrentPullsShareLayers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "")
	ref := reg.Addr() + "/concurrent:latest"
	pushLayers(t, ctx, ref, layerOf(t, []tarEntry{{name: "f", body: strings.Repeat("x", 1<<16)}}))

	// Stores on one root stand in for racing pulls: each unpacks, one rename wins.
	root := t.TempDir()
	stores := []*Store{newStore(t, root), newStore(t, root), newStore(t, root), newStore(t, root)}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { _, errs[i] = s.Pull(ctx, ref) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	img, err := stores[0].Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(img.Layers[0]+"/f", &st); err != nil || st.Size != 1<<16 {
		t.Errorf("layer file: size %d, %v", st.Size, err)
	}
}
