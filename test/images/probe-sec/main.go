// Command probe-sec is the test image of the sandbox's security settings: it reports, as one
// JSON object, what its process may do (its user and groups, its capability sets,
// no_new_privs and seccomp mode from /proc/self/status, whether / is writable, whether
// io_uring_setup is allowed) and what a directory holds.
//
//	probe-sec                      print the report, then serve a fresh one on $PORT at /
//	probe-sec -once [-ls DIR]      print the report (listing DIR) and exit
//	probe-sec -symlink TARGET LINK make LINK a symbolic link to TARGET and exit
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/test/images/internal/serve"
	"github.com/gantry-run/gantry/test/images/probe-sec/report"
)

func main() {
	once := flag.Bool("once", false, "print the report and exit")
	ls := flag.String("ls", "", "list this directory in the report")
	symlink := flag.Bool("symlink", false, "make args[1] a symbolic link to args[0] and exit")
	flag.Parse()
	if *symlink {
		if err := os.Symlink(flag.Arg(0), flag.Arg(1)); err != nil {
			fmt.Fprintln(os.Stderr, "probe-sec:", err)
			os.Exit(1)
		}
		return
	}
	b, _ := json.Marshal(look(*ls))
	fmt.Println(string(b))
	if *once {
		return
	}
	serve.Main("probe-sec", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(look(r.URL.Query().Get("ls")))
	}))
}

func look(dir string) report.Report {
	r := report.Report{UID: os.Getuid(), GID: os.Getgid(), Status: status()}
	r.Groups, _ = os.Getgroups()
	r.RootWrite = rootWrite()
	r.IOUringSetup = ioUringSetup()
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			r.Ls = []string{"error: " + err.Error()}
		}
		for _, e := range entries {
			r.Ls = append(r.Ls, e.Name())
		}
	}
	return r
}

func status() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && (strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" || k == "Seccomp") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func rootWrite() string {
	f, err := os.CreateTemp("/", ".probe-sec-")
	if err != nil {
		return err.Error()
	}
	f.Close()
	_ = os.Remove(f.Name())
	return "ok"
}

// ioUringSetup asks for a ring of one entry and closes it.
func ioUringSetup() string {
	var params [120]byte // struct io_uring_params, zeroed
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 {
		return unix.ErrnoName(errno)
	}
	_ = unix.Close(int(fd))
	return "ok"
}
