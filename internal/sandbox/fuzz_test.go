package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpenSubPath resolves fuzzed subPaths in a volume that holds the links a container could
// plant (to /, up and out, to proc's magic links, in a loop, and one that stays inside): what
// opens must be the volume itself or lie below it.
func FuzzOpenSubPath(f *testing.F) {
	outer := fuzzDir(f, "opensubpath")
	vol := filepath.Join(outer, "vol")
	for _, d := range []string{vol, filepath.Join(vol, "dir", "deeper"), filepath.Join(outer, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(vol, "dir", "file"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	for link, target := range map[string]string{
		"esc": "/", "up": "../outside", "magic": "/proc/self/root", "fd": "/proc/self/fd/0",
		"loop": "loop", "in": "dir", "dir/back": "..", "dir/deeper/up2": "../../..",
	} {
		if err := os.Symlink(target, filepath.Join(vol, link)); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []string{"esc", "esc/etc", "up", "magic", "fd", "loop", "in", "in/file", "dir/back/dir",
		"dir/deeper/up2", "new/made", "dir/../..", ".", "", "/etc", "in/../../x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sub string) {
		file, err := openSubPath(vol, sub)
		if err != nil {
			return
		}
		defer file.Close()
		got, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(file.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		if got != vol && !strings.HasPrefix(got, vol+"/") {
			t.Fatalf("subPath %q opened %s, outside the volume %s", sub, got, vol)
		}
	})
}

// fuzzDir is a fresh directory for a fuzz target's files. While fuzzing, the target runs in
// worker processes that the fuzzer kills at the end, so their t.TempDir's are never removed:
// the directory is named by the process, and each start removes those of processes gone.
func fuzzDir(f *testing.F, name string) string {
	prefix := filepath.Join(os.TempDir(), "gantry-fuzz-"+name+"-")
	stale, _ := filepath.Glob(prefix + "*")
	for _, d := range stale {
		pid, err := strconv.Atoi(strings.TrimPrefix(d, prefix))
		if err == nil && pid != os.Getpid() {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
				_ = os.RemoveAll(d)
			}
		}
	}
	dir := prefix + strconv.Itoa(os.Getpid())
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// mangleMountPath escapes a path as the kernel does in /proc/self/mountinfo: space, tab,
// newline and backslash as three octal digits.
func mangleMountPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzUnescapeMountPath(f *testing.F) {
	for _, seed := range []string{"/a b", `/a\040b`, "/tab\there", `\`, `\\`, `/x\7`, "/\n", `\134040`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got := unescapeMountPath(mangleMountPath(p)); got != p {
			t.Fatalf("unescape(mangle(%q)) = %q", p, got)
		}
		_ = unescapeMountPath(p) // any text at all: no panic
	})
}
