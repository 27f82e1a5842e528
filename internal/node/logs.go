package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubeletHandler routes the kubelet API endpoints the node implements.
func (n *Node) kubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", n.serveLogs)
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", n.serveExec)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gantry node: "+r.URL.Path+" is not served by a serverless node", http.StatusNotImplemented)
	})
	return mux
}

// serveLogs answers GET /containerLogs: tailLines, limitBytes and follow are honoured.
func (n *Node) serveLogs(w http.ResponseWriter, r *http.Request) {
	pod, err := n.pods.Pods(r.PathValue("namespace")).Get(r.PathValue("pod"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	name := r.PathValue("container")
	if !hasContainer(pod, name) {
		http.Error(w, "container "+strconv.Quote(name)+" is not in pod "+pod.Name, http.StatusNotFound)
		return
	}
	path := n.opts.Sandboxes.LogPath(string(pod.UID), name)
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "no logs yet for container "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	defer f.Close()
	q := r.URL.Query()
	var start int64
	if s := q.Get("tailLines"); s != "" {
		if lines, err := strconv.Atoi(s); err == nil && lines >= 0 {
			start = tailOffset(f, lines)
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var out io.Writer = w
	if s := q.Get("limitBytes"); s != "" {
		if limit, err := strconv.ParseInt(s, 10, 64); err == nil && limit > 0 {
			out = &limitWriter{w: w, left: limit}
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	if _, err := io.Copy(out, f); err != nil || q.Get("follow") != "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	follow(r.Context(), f, out, flusher)
}

// hasContainer reports whether pod has a container (or init container) called name.
func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		if slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name }) {
			return true
		}
	}
	return false
}

// follow copies what is appended to f until the client goes away.
func follow(ctx context.Context, f *os.File, w io.Writer, flusher http.Flusher) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := io.Copy(w, f); err != nil {
				return
			}
		}
	}
}

// tailOffset is the offset of the start of the last n lines of f.
func tailOffset(f *os.File, n int) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	size := st.Size()
	if n == 0 {
		return size
	}
	const chunk = 64 << 10
	lines := 0
	end := size
	buf := make([]byte, chunk)
	for end > 0 {
		off := max(end-chunk, 0)
		b := buf[:end-off]
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return 0
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || off+int64(i) == size-1 {
				continue
			}
			lines++
			if lines == n {
				return off + int64(i) + 1
			}
		}
		end = off
	}
	return 0
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
