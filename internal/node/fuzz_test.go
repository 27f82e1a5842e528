package node

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubeExpand is Kubernetes' $(VAR) expansion written out plainly, the reference Expand is
// checked against: at each "$", "$$" is a dollar, "$(NAME)" is NAME's value (or stays as
// written when NAME is unknown), a "$(" that never closes stays as written and the scan goes
// on after it, and any other "$" is itself.
func kubeExpand(s string, vars map[string]string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			out = append(out, s[i])
			continue
		}
		next := s[i+1]
		switch next {
		case '$':
			out = append(out, '$')
			i++
		case '(':
			closing := strings.IndexByte(s[i+2:], ')')
			if closing < 0 {
				out = append(out, '$', '(')
				i++
				continue
			}
			name := s[i+2 : i+2+closing]
			if v, ok := vars[name]; ok {
				out = append(out, v...)
			} else {
				out = append(out, "$("+name+")"...)
			}
			i += 2 + closing
		default:
			out = append(out, '$', next)
			i++
		}
	}
	return string(out)
}

func FuzzExpand(f *testing.F) {
	for _, seed := range [][3]string{
		{"$(A)", "A", "x"}, {"$$(A)", "A", "x"}, {"$(A", "A", "x"}, {"$(A$$(B)", "B", "y"},
		{"a$", "", ""}, {"$($(A))", "A", "$(A)"}, {"$(UNKNOWN) $(A)", "A", ""}, {"$x$$$(A)$", "A", "v"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, s, name, value string) {
		vars := map[string]string{name: value, "PORT": "8080"}
		got, want := Expand(s, vars), kubeExpand(s, vars)
		if got != want {
			t.Fatalf("Expand(%q) = %q, Kubernetes gives %q", s, got, want)
		}
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("Expand(%q) = %q changed a string without references", s, got)
		}
	})
}

// FuzzVolumeSubPath checks that no subPath or subPathExpr reaches the sandbox unless it stays
// inside its volume when joined onto it (the sandbox then resolves links as well).
func FuzzVolumeSubPath(f *testing.F) {
	for _, seed := range []string{"esc", "a/b", "../x", "a/../../x", "/etc", ".", "a/./b/", "..", "...", "a/..", "$(POD)/../..", "\x00"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, sub string, expr bool) {
		vm := corev1.VolumeMount{Name: "v", MountPath: "/m", SubPath: sub}
		if expr {
			vm = corev1.VolumeMount{Name: "v", MountPath: "/m", SubPathExpr: sub}
		}
		c := corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{vm},
			Env: []corev1.EnvVar{{Name: "POD", Value: ".."}, {Name: "NAME", Value: "p-1"}}}
		pod := specPod(c, corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		env, err := Env(pod, &c, nil, sources{})
		if err != nil {
			t.Fatal(err)
		}
		mounts, err := volumeMounts(pod, &c, map[string]string{"v": "/vol"}, env)
		if err != nil {
			return
		}
		got := mounts[0].SubPath
		if sub == "" {
			if got != "" {
				t.Fatalf("no subPath became %q", got)
			}
			return
		}
		joined := filepath.Join("/vol", got)
		if got == "" || filepath.IsAbs(got) || !strings.HasPrefix(joined, "/vol/") || strings.Contains(got, "\x00") {
			t.Fatalf("subPath %q (expr %v) reached the sandbox as %q, which leaves the volume (%s)", sub, expr, got, joined)
		}
		for _, part := range strings.Split(got, "/") {
			if part == ".." {
				t.Fatalf("subPath %q reached the sandbox as %q, with a \"..\"", sub, got)
			}
		}
	})
}

// FuzzWriteVolume writes one file at a fuzzed path and checks it lands inside the volume,
// readable where the pod put it, and that nothing appears beside the volume.
func FuzzWriteVolume(f *testing.F) {
	for _, seed := range []string{"key", "a/b/c", "../x", "..data", "..2026_01_01", "a//b", "./a", "a/..", "/abs", "a/.../b", "..data/x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		p := payload{}
		if err := p.add(rel, []byte("content"), 0o600); err != nil {
			return
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "vol")
		if err := writeVolume(dir, p, time.Unix(1, 0)); err != nil {
			// A name the filesystem refuses (too long, a file where a directory must go)
			// is an error, not an escape.
			return
		}
		entries, err := os.ReadDir(parent)
		if err != nil || len(entries) != 1 {
			t.Fatalf("path %q: beside the volume: %v %v", rel, entries, err)
		}
		for clean := range p {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(clean)))
			if err != nil || string(b) != "content" {
				t.Fatalf("path %q (%s): %q, %v", rel, path.Clean(clean), b, err)
			}
		}
	})
}
