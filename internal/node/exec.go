package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Stream timeouts of kubectl exec, as the kubelet's defaults.
const (
	execIdleTimeout           = 4 * time.Hour
	execStreamCreationTimeout = 30 * time.Second
)

// serveExec answers the kubelet API's /exec: the API server upgrades kubectl's connection
// (SPDY or WebSocket) and the command runs in the container through the sandbox.
func (n *Node) serveExec(w http.ResponseWriter, r *http.Request) {
	pod, err := n.pods.Pods(r.PathValue("namespace")).Get(r.PathValue("pod"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	// The sandbox is asked for the container by name: one of another pod is not this pod's.
	if name := r.PathValue("container"); !hasContainer(pod, name) {
		http.Error(w, "container "+strconv.Quote(name)+" is not in pod "+pod.Name, http.StatusNotFound)
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "exec: no command", http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, r, executor{n}, pod.Name, string(pod.UID), r.PathValue("container"), cmd, opts,
		execIdleTimeout, execStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

type executor struct{ n *Node }

// ExecInContainer runs cmd in the sandbox; a non-zero exit reaches kubectl as its exit code.
func (e executor) ExecInContainer(ctx context.Context, _, uid, container string, cmd []string, in io.Reader, out, errw io.WriteCloser,
	tty bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	code, err := e.n.opts.Sandboxes.Exec(ctx, uid, container, cmd, in, stdout, stderr, tty)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}
