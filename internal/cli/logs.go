package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/kn"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// userContainer is the name Knative gives the container a Service runs.
const userContainer = kn.UserContainer

func newLogsCommand() *cobra.Command {
	var conn connFlags
	var follow bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the logs of all the pods of a Service, each line prefixed with its pod",
		Long: `Print the user container's logs of every pod of the Service NAME, through the
Kubernetes API's pod log endpoint, each line prefixed with its pod. With -f it follows them,
and the pods that start later (a scale-up, a new revision, a wake from zero) as they come.`,
		Example: `  gantry logs hello
  gantry logs hello -f
  gantry logs hello --tail 20`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := conn.connect()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctxOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if _, err := k.getService(ctx, args[0]); err != nil {
				return err
			}
			l := &podLogs{k: k, service: args[0], follow: follow, out: &lockedWriter{w: cmd.OutOrStdout()}, errOut: cmd.ErrOrStderr(), started: map[string]bool{}}
			if tail >= 0 {
				l.tail = &tail
			}
			return l.run(ctx)
		},
	}
	conn.addFlags(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the logs, and those of new pods")
	cmd.Flags().Int64Var(&tail, "tail", -1, "only the last N lines of each pod (-1: all)")
	return cmd
}

// podLogs prints the logs of a Service's pods.
type podLogs struct {
	k       *knClient
	service string
	follow  bool
	tail    *int64
	out     io.Writer
	errOut  io.Writer
	started map[string]bool // pods whose logs are printed or streaming
	wg      sync.WaitGroup
}

func (l *podLogs) run(ctx context.Context) error {
	defer l.wg.Wait()
	for first := true; ; first = false {
		pods, err := l.k.kube.CoreV1().Pods(l.k.namespace).List(ctx, metav1.ListOptions{LabelSelector: servingv1.ServiceLabelKey + "=" + l.service})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return apiError(err, l.k.host)
		}
		items := pods.Items
		sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		if first && len(items) == 0 {
			fmt.Fprintf(l.errOut, "Service %s has no pods now (scaled to zero?)\n", l.service)
		}
		for i := range items {
			pod := &items[i]
			if l.started[pod.Name] || !containerStarted(pod) {
				continue
			}
			l.started[pod.Name] = true
			if !l.follow {
				l.stream(ctx, pod.Name)
				continue
			}
			l.wg.Go(func() { l.stream(ctx, pod.Name) })
		}
		if !l.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// containerStarted reports whether the pod's user container has run, so it has logs.
func containerStarted(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == userContainer {
			return cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil
		}
	}
	return false
}

// stream copies one pod's log, each line prefixed with the pod's name.
func (l *podLogs) stream(ctx context.Context, pod string) {
	opts := &corev1.PodLogOptions{Container: userContainer, Follow: l.follow, TailLines: l.tail}
	rc, err := l.k.kube.CoreV1().Pods(l.k.namespace).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(l.errOut, "[%s] no logs: %s\n", pod, oneLine(err.Error()))
		}
		return
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(l.out, "[%s] %s\n", pod, sc.Text())
	}
}

// lockedWriter lets several pods' streams write whole lines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
