// Package imagetest builds the programs under test/images into images and pushes them to a
// registry, for tests and benchmarks. Nothing in the gantry binary imports it.
package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gantry-run/gantry/internal/image"
)

// modulePath is the Go module that holds the test images.
const modulePath = "github.com/gantry-run/gantry"

// Ref is where Push and PushAll put the test image called name.
func Ref(registryHost, name string) string {
	return registryHost + "/gantry/test/" + name + ":latest"
}

// Push builds the program test/images/<name> and pushes it to Ref(registryHost, name), which
// it returns. It finds test/images from the module root above the working directory, so it
// works from any package's tests.
func Push(ctx context.Context, registryHost, name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ref := Ref(registryHost, name)
	if _, err := image.BuildGoImage(ctx, filepath.Join(root, "test", "images", name), ref); err != nil {
		return "", fmt.Errorf("building test image %s: %w", name, err)
	}
	return ref, nil
}

// PushAll builds every program under test/images (one directory with a main.go each) and
// pushes it to Ref(registryHost, name). It returns each image's digest reference
// (repo@sha256:…) by name.
func PushAll(ctx context.Context, registryHost string) (map[string]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	dir := filepath.Join(root, "test", "images")
	names, err := Names(dir)
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	refs := make(map[string]string, len(names))
	for _, n := range names {
		refs[n] = Ref(registryHost, n)
	}
	digests, err := image.BuildGoImages(ctx, dir, refs)
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	out := make(map[string]string, len(names))
	for n, h := range digests {
		parsed, err := image.ParseReference(refs[n])
		if err != nil {
			return nil, err
		}
		out[n] = parsed.Context().Digest(h.String()).String()
	}
	return out, nil
}

// Names lists the directories under dir that hold a main.go, sorted.
func Names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "internal" || e.Name() == "testdata" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "main.go")); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no test images under %s", dir)
	}
	return names, nil
}

// moduleRoot walks up from the working directory to the go.mod of Gantry's module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s above the working directory", modulePath)
		}
		dir = parent
	}
}
