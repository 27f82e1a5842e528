package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenFreshDirWritesMarker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()
	if !d.Fresh {
		t.Error("Fresh = false on a new directory, want true")
	}
	if d.Marker.ClusterID == "" || d.Marker.Format != FormatVersion {
		t.Errorf("marker = %+v, want a cluster ID and format %d", d.Marker, FormatVersion)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("mode = %v, want 0700", st.Mode().Perm())
	}
}

func TestReopenKeepsClusterID(t *testing.T) {
	dir := t.TempDir()
	d1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := d1.Marker.ClusterID
	d1.Close()
	d2, err := Open(dir)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer d2.Close()
	if d2.Fresh {
		t.Error("Fresh = true on reopen")
	}
	if d2.Marker.ClusterID != id {
		t.Errorf("cluster ID changed: %q → %q", id, d2.Marker.ClusterID)
	}
}

func TestSecondOpenIsRefusedWhileLocked(t *testing.T) {
	dir := t.TempDir()
	d1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is in use by another gantry server (pid") {
		t.Fatalf("second Open = %v, want an in-use error naming the pid", err)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the path to open
		wantErr string
	}{
		{
			name: "foreign directory",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "photos.tar"), "precious")
				return dir
			},
			wantErr: `is not a gantry data dir (it holds "photos.tar" and no gantry-data.json)`,
		},
		{
			name: "corrupt marker",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, MarkerFile), "{garbage")
				return dir
			},
			wantErr: "is damaged: gantry-data.json: not valid JSON",
		},
		{
			name: "marker of another kind",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, MarkerFile), `{"kind":"Other","format":1,"clusterID":"x"}`)
				return dir
			},
			wantErr: `kind is "Other", want "GantryDataDir"`,
		},
		{
			name: "newer format",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, MarkerFile), `{"kind":"GantryDataDir","format":99,"clusterID":"x"}`)
				return dir
			},
			wantErr: "format 99 was written by a newer gantry",
		},
		{
			name: "path under a regular file",
			setup: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "file"), "x")
				return filepath.Join(dir, "file", "data")
			},
			wantErr: "cannot be created: not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			before := snapshot(t, dir)
			d, err := Open(path)
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error = %q does not name the directory %s", err, dir)
			}
			after := snapshot(t, dir)
			for name, content := range before {
				if after[name] != content {
					t.Errorf("%s changed: %q → %q", name, content, after[name])
				}
			}
		})
	}
}

func TestForeignListIsShortened(t *testing.T) {
	got := describe([]string{"a", "b", "c", "d", "e"})
	if want := `"a", "b", "c" and 2 more`; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps the regular files under dir to their contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
