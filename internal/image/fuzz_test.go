package image

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzUnpackLayer: whatever the tar stream, the unpacker writes nothing outside its
// directory, and a file planted beside it is untouched.
func FuzzUnpackLayer(f *testing.F) {
	for _, entries := range [][]tarEntry{
		{{name: "etc/", typ: tar.TypeDir}, {name: "etc/hosts", body: "127.0.0.1 localhost\n"}},
		{{name: "esc", typ: tar.TypeSymlink, link: "../outside"}, {name: "esc/x", body: "escaped"}},
		{{name: "abs", typ: tar.TypeSymlink, link: "/"}, {name: "abs/tmp/x", body: "escaped"}},
		{{name: "hl", typ: tar.TypeLink, link: "../outside/sentinel"}},
		{{name: "../x", body: "escaped"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: "d/.wh.gone"}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			typ := e.typ
			if typ == 0 {
				typ = tar.TypeReg
			}
			_ = tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o755, Size: int64(len(e.body))})
			_, _ = tw.Write([]byte(e.body))
		}
		_ = tw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		outside := filepath.Join(parent, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		sentinel := filepath.Join(outside, "sentinel")
		if err := os.WriteFile(sentinel, []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = unpackLayer(bytes.NewReader(data), dir, unpackOptions{maxBytes: 1 << 20, maxEntries: 256})
		// Nothing but the layer directory and the untouched outside directory.
		err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case p == parent, p == dir, p == outside, p == sentinel, strings.HasPrefix(p, dir+string(filepath.Separator)):
				return nil
			}
			t.Errorf("the unpacker wrote %s, outside its directory", p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(sentinel); err != nil || string(b) != "untouched" {
			t.Fatalf("the file beside the layer was changed: %q, %v", b, err)
		}
	})
}

// FuzzManifestPath: a registry path that parses and passes validRef lands in its
// repository's directory under the manifests directory, never above it.
func FuzzManifestPath(f *testing.F) {
	for _, p := range []string{
		"/v2/hello/manifests/latest",
		"/v2/default/hello/manifests/sha256:" + strings.Repeat("a", 64),
		"/v2/../../etc/manifests/passwd",
		"/v2/a/_manifests/manifests/x",
		"/v2/a//b/manifests/..",
		"/v2/a/manifests/../../x",
	} {
		f.Add(p)
	}
	r := &Registry{opts: RegistryOptions{Dir: "/data/registry"}}
	base := r.manifestDir() + string(filepath.Separator)
	f.Fuzz(func(t *testing.T, p string) {
		repo, target, ok := manifestPath(p)
		if !ok || validRef(repo, target) != nil {
			return
		}
		file := r.targetFile(repo, target)
		if !strings.HasPrefix(file, base) || filepath.Clean(file) != file {
			t.Fatalf("path %q (repo %q, target %q) maps to %s, outside %s", p, repo, target, file, base)
		}
		rel := strings.TrimPrefix(file, base)
		for _, c := range strings.Split(rel, string(filepath.Separator)) {
			if c == ".." || c == "." || c == "" {
				t.Fatalf("path %q maps to %s, with a %q component", p, file, c)
			}
		}
	})
}
