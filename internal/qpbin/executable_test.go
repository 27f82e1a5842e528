package qpbin

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-run/gantry/internal/qpbin/qpbintest"
)

func TestCheckExecutable(t *testing.T) {
	dir := t.TempDir()
	text, short := filepath.Join(dir, "script"), filepath.Join(dir, "short")
	if err := os.WriteFile(text, []byte("#!/bin/sh\nexec /usr/local/bin/gantry \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"static", qpbintest.WriteELF(t, elf.ET_EXEC, elf.PT_LOAD), ""},
		{"static PIE", qpbintest.WriteELF(t, elf.ET_DYN, elf.PT_PHDR, elf.PT_LOAD), ""},
		{"built with cgo", qpbintest.WriteELF(t, elf.ET_EXEC, elf.PT_PHDR, elf.PT_INTERP, elf.PT_LOAD), "dynamically linked; they run it inside pods, which have no system libraries: build it with CGO_ENABLED=0"},
		{"an object file", qpbintest.WriteELF(t, elf.ET_REL), "not an executable (ET_REL)"},
		{"not ELF", text, "not an ELF executable"},
		{"cut short", short, "not an ELF executable"},
		{"missing", filepath.Join(t.TempDir(), "nothing"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckExecutable(tc.path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, tc.path, tc.want)
			}
		})
	}
}
