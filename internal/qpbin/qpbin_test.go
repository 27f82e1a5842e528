package qpbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallWritesTheBinaryOnceAndRemovesOtherBuilds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	old, err := installBytes(dir, []byte("old build"))
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, "."+filePrefix+"0123.tmp42")
	unrelated := filepath.Join(dir, "notes.txt")
	for _, f := range []string{leftover, unrelated} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := []byte("\x7fELF new build")
	path, err := installBytes(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	if path == old || filepath.Dir(path) != dir {
		t.Fatalf("installed at %s, the old build at %s", path, old)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("installed file: %q, %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode: %v, %v", fi.Mode(), err)
	}
	for _, gone := range []string{old, leftover} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("a file not of the queue-proxy was removed: %v", err)
	}

	// Installed again: the same path; a file of that name cut short is rewritten.
	if err := os.WriteFile(path, []byte("damaged"), 0o755); err != nil {
		t.Fatal(err)
	}
	again, err := installBytes(dir, bin)
	if err != nil || again != path {
		t.Fatalf("installed again at %s (%v), first at %s", again, err, path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, bin) {
		t.Fatalf("a damaged install was kept: %q", got)
	}
}

func TestInstallWithoutABinaryInstallsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	path, err := install(dir, nil, "")
	if err != nil || path != "" {
		t.Fatalf("install(nil) = %q, %v", path, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("made %s for nothing (%v)", dir, err)
	}
}

func TestInstallRefusesAFileInPlaceOfItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := installBytes(dir, []byte("x")); err == nil {
		t.Fatal("no error installing into a file")
	}
}

// installBytes installs bin under its digest, as hack/build.sh reckons it.
func installBytes(dir string, bin []byte) (string, error) {
	sum := sha256.Sum256(bin)
	return install(dir, bin, hex.EncodeToString(sum[:8]))
}
