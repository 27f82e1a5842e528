// Command startup measures how long gantry server takes to serve a ready API and to have every
// part up (its ready line), cold (empty data dir) and warm (a restart on the same data dir), how
// long it takes to stop, and how much memory an idle server holds. In
// the same run it measures the baseline: a plain etcd and kube-apiserver pair, built from the
// same module versions, started side by side as two processes.
//
//	go run ./bench/startup -gantry bin/gantry -runs 5
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gantry-run/gantry/bench/internal/proc"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/freeport"
)

// readyLine is what gantry server logs once every part is up.
const readyLine = `msg="API server ready"`

func main() {
	gantry := flag.String("gantry", "bin/gantry", "gantry binary to measure")
	runs := flag.Int("runs", 5, "starts of each kind")
	idle := flag.Duration("idle", 30*time.Second, "how long a server idles before its memory is read")
	settle := flag.Duration("settle", 10*time.Second, "how long a warm server runs before it is stopped (the last run idles -idle instead)")
	flag.Parse()
	if err := run(*gantry, *runs, *idle, *settle); err != nil {
		fmt.Fprintf(os.Stderr, "startup: %v\n", err)
		os.Exit(1)
	}
}

func run(gantry string, runs int, idle, settle time.Duration) error {
	work, err := os.MkdirTemp("", "gantry-bench-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// The servers' data dirs are below it: pods' user namespaces need to pass through.
	if err := os.Chmod(work, 0o711); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "building the baseline etcd and kube-apiserver …")
	etcdBin, apiBin := filepath.Join(work, "etcd"), filepath.Join(work, "kube-apiserver")
	for bin, pkg := range map[string]string{etcdBin: "go.etcd.io/etcd/server/v3", apiBin: "k8s.io/kubernetes/cmd/kube-apiserver"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}

	var cold, warm, coldAll, warmAll, stop, stopSettled, base []time.Duration
	var gantryRSS, baseRSS int64
	for i := range runs {
		fmt.Fprintf(os.Stderr, "run %d/%d\n", i+1, runs)
		dataDir := filepath.Join(work, fmt.Sprintf("gantry-%d", i))
		ports, err := freeport.Get(3)
		if err != nil {
			return err
		}
		args := []string{"server", "--data-dir", dataDir, fmt.Sprintf("--https-port=%d", ports[0]),
			fmt.Sprintf("--etcd-client-port=%d", ports[1]), fmt.Sprintf("--etcd-peer-port=%d", ports[2])}
		readyz := fmt.Sprintf("https://127.0.0.1:%d/readyz", ports[0])

		p, d, all, err := start(readyz, readyLine, gantry, args...)
		if err != nil {
			return fmt.Errorf("gantry cold start: %w", err)
		}
		cold, coldAll = append(cold, d), append(coldAll, all)
		s, err := stopProcess(p)
		if err != nil {
			return err
		}
		stop = append(stop, s)

		p, d, all, err = start(readyz, readyLine, gantry, args...)
		if err != nil {
			return fmt.Errorf("gantry warm start: %w", err)
		}
		warm, warmAll = append(warm, d), append(warmAll, all)
		if i == runs-1 {
			time.Sleep(idle)
			gantryRSS = proc.RSS(p.Process.Pid)
		} else {
			time.Sleep(settle)
		}
		s, err = stopProcess(p)
		if err != nil {
			return err
		}
		stopSettled = append(stopSettled, s)

		d, rssBase, err := baseline(work, i, etcdBin, apiBin, idleIf(i == runs-1, idle))
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		base = append(base, d)
		if rssBase > 0 {
			baseRSS = rssBase
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tp50\tmin\tmax\t")
	row := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, ms(ds[len(ds)/2]), ms(ds[0]), ms(ds[len(ds)-1]))
	}
	row("gantry server start → /readyz ok, cold (empty data dir)", cold)
	row("gantry server start → /readyz ok, warm (same data dir)", warm)
	row("gantry server start → ready line (every part up), cold", coldAll)
	row("gantry server start → ready line (every part up), warm", warmAll)
	row("gantry server SIGTERM right after the ready line → exit", stop)
	row(fmt.Sprintf("gantry server SIGTERM after %s up (warm) → exit", settle), stopSettled)
	row("baseline: etcd + kube-apiserver start → /readyz ok, cold", base)
	_ = tw.Flush()
	fmt.Printf("\nresident memory after %s idle: gantry server (control plane, serving controllers, registry, node) %d MB; baseline etcd + kube-apiserver %d MB\n",
		idle, gantryRSS>>20, baseRSS>>20)
	fmt.Printf("runs: %d of each\n", runs)
	return nil
}

func idleIf(ok bool, d time.Duration) time.Duration {
	if ok {
		return d
	}
	return 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// startAndWait starts a command and returns once url answers 200, with the time it took.
func startAndWait(url, bin string, args ...string) (*exec.Cmd, time.Duration, error) {
	p, d, _, err := start(url, "", bin, args...)
	return p, d, err
}

// start starts a command and returns once url answers 200 and, when readyLine is set, the
// command has written a stderr line holding readyLine, with the time each took.
func start(url, readyLine, bin string, args ...string) (*exec.Cmd, time.Duration, time.Duration, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lineSeen := make(chan struct{})
	if readyLine != "" {
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, 0, 0, err
		}
		go func() {
			sc := bufio.NewScanner(stderr)
			seen := false
			for sc.Scan() {
				if !seen && strings.Contains(sc.Text(), readyLine) {
					seen = true
					close(lineSeen)
				}
			}
		}()
	} else {
		close(lineSeen)
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, err
	}
	fail := func(err error) (*exec.Cmd, time.Duration, time.Duration, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, 0, 0, err
	}
	if err := waitReady(url, 2*time.Minute); err != nil {
		return fail(err)
	}
	readyz := time.Since(began)
	select {
	case <-lineSeen:
	case <-time.After(2 * time.Minute):
		return fail(fmt.Errorf("%s wrote no %q line within 2m", bin, readyLine))
	}
	return cmd, readyz, time.Since(began), nil
}

func waitReady(url string, timeout time.Duration) error {
	// The benchmark only needs to know when the server answers; it trusts any certificate.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // timing probe on loopback
	}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, timeout)
}

func stopProcess(cmd *exec.Cmd) (time.Duration, error) {
	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done: //nolint:errcheck // the exit status is not what is timed
		return time.Since(began), nil
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return 0, fmt.Errorf("%s did not stop within 90s", cmd.Path)
	}
}

// baseline starts a plain etcd and kube-apiserver, measures the time to /readyz, optionally
// idles and reads their memory, and stops both.
func baseline(work string, i int, etcdBin, apiBin string, idle time.Duration) (time.Duration, int64, error) {
	dir := filepath.Join(work, fmt.Sprintf("baseline-%d", i))
	certs := pki.Bundle{Dir: filepath.Join(dir, "pki")}
	if err := certs.Ensure(pki.Options{Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		return 0, 0, err
	}
	ports, err := freeport.Get(3)
	if err != nil {
		return 0, 0, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	began := time.Now()
	etcd := exec.Command(etcdBin, "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL, "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "error")
	if err := etcd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _, _ = stopProcess(etcd) }()
	api, _, err := startAndWait(fmt.Sprintf("https://127.0.0.1:%d/readyz", ports[0]), apiBin,
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[0]),
		"--tls-cert-file="+certs.ServingCert(), "--tls-private-key-file="+certs.ServingKey(),
		"--client-ca-file="+certs.CACert(), "--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+certs.ServiceAccountPub(),
		"--service-account-signing-key-file="+certs.ServiceAccountKey(),
		"--service-cluster-ip-range=10.43.0.0/16", "--cert-dir="+certs.Dir, "--v=0")
	if err != nil {
		return 0, 0, err
	}
	// The pair is ready when the API server is; the clock started with etcd.
	d := time.Since(began)
	var mem int64
	if idle > 0 {
		time.Sleep(idle)
		mem = proc.RSS(api.Process.Pid) + proc.RSS(etcd.Process.Pid)
	}
	_, err = stopProcess(api)
	return d, mem, err
}
