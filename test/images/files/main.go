// Command files is a test image that reads and writes files in its container, so a test on
// the host can check a volume as a pod sees it. Its answers are JSON:
//
//	GET /file?path=P   {"body": "…", "uid": 0, "gid": 0, "mode": "-rw-r--r--"}   reads P and its owner
//	PUT /file?path=P   {"uid": 0}                                                  writes the request body to P
//
// A failure comes back as {"error": "…"} with status 200, so a test tells a refused write
// (a read-only volume) from a pod that does not answer. "uid" in a PUT answer is the
// process's own uid.
package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"syscall"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

const maxBody = 1 << 20

type result struct {
	Body  string `json:"body,omitempty"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Mode  string `json:"mode,omitempty"`
	Error string `json:"error,omitempty"`
}

func main() {
	serve.Main("files", newHandler())
}

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		reply(w, read(r.URL.Query().Get("path")))
	})
	mux.HandleFunc("PUT /file", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err == nil {
			err = os.WriteFile(r.URL.Query().Get("path"), b, 0o644)
		}
		res := result{UID: os.Getuid(), GID: os.Getgid()}
		if err != nil {
			res.Error = err.Error()
		}
		reply(w, res)
	})
	return mux
}

func read(path string) result {
	f, err := os.Open(path)
	if err != nil {
		return result{Error: err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return result{Error: err.Error()}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBody))
	if err != nil {
		return result{Error: err.Error()}
	}
	res := result{Body: string(b), Mode: fi.Mode().String()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		res.UID, res.GID = int(st.Uid), int(st.Gid)
	}
	return res
}

func reply(w http.ResponseWriter, r result) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r)
}
