package node

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// writeELF writes a minimal 64-bit ELF file of type typ with one program header per entry
// of progs.
func writeELF(t *testing.T, typ elf.Type, progs ...elf.ProgType) string {
	t.Helper()
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(typ), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(progs)), Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if err := binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(p), Align: 8}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "gantry")
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

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
		{"static", writeELF(t, elf.ET_EXEC, elf.PT_LOAD), ""},
		{"static PIE", writeELF(t, elf.ET_DYN, elf.PT_PHDR, elf.PT_LOAD), ""},
		{"built with cgo", writeELF(t, elf.ET_EXEC, elf.PT_PHDR, elf.PT_INTERP, elf.PT_LOAD), "dynamically linked; they run it inside pods, which have no system libraries: build it with CGO_ENABLED=0"},
		{"an object file", writeELF(t, elf.ET_REL), "not an executable (ET_REL)"},
		{"not ELF", text, "not an ELF executable"},
		{"cut short", short, "not an ELF executable"},
		{"missing", filepath.Join(t.TempDir(), "nothing"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkExecutable(tc.path)
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

func TestNewRefusesABinaryQueueProxiesCannotRun(t *testing.T) {
	base := Options{Client: fake.NewClientset(), Sandboxes: newFakeSandboxes(clocktesting.NewFakeClock(time.Now())), Images: fakeImages{}, StateDir: t.TempDir()}
	for _, exe := range []string{"", writeELF(t, elf.ET_EXEC, elf.PT_INTERP)} {
		opts := base
		opts.QueueProxyBinary = exe
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "which queue-proxies run from") {
			t.Errorf("QueueProxyBinary %q: %v, want an error about the queue-proxy binary", exe, err)
		}
	}
}
