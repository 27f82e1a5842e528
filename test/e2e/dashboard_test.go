package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/poll"
)

// TestDashboard drives the dashboard in a headless Chromium: the page lists a deployed
// service; a burst of traffic raises its request graph and its pods follow; moving the
// traffic slider to 100% of a new revision changes the Route, and requests follow. From an
// address beyond loopback the page needs the token.
func TestDashboard(t *testing.T) {
	requireNode(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("Debian's chromium is not installed (make test installs it: hack/install-deps.sh --test)")
	}
	dataDir := newDataDir(t)
	ports := freePorts(t)
	dashPort, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	const token = "e2e-dashboard-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dataDir, ports, "--dashboard-token-file="+tokenFile,
		fmt.Sprintf("--dashboard-address=0.0.0.0:%d", dashPort[0]))

	t.Run("beyond loopback the token is required", func(t *testing.T) {
		ip := hostIP(t)
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(ip, strconv.Itoa(dashPort[0])))
		if code, body := fetch(t, url, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s from %s without the token: %d %q, want 401", url, ip, code, body)
		}
		if code, body := fetch(t, url, "Bearer "+token); code != http.StatusOK || !strings.Contains(body, "<title>Gantry</title>") {
			t.Errorf("GET %s with the token: %d %.200q, want the page", url, code, body)
		}
	})

	// Version one loads on demand (?sleep holds a request, so pods fill up); version two
	// is the hello image.
	slow := buildImage(t, ports[4], "autoscale")
	hello := buildImage(t, ports[4], "hello")
	apply := func(image, traffic string) {
		t.Helper()
		manifest := filepath.Join(t.TempDir(), "dash.yaml")
		if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: dash
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "2"
        autoscaling.knative.dev/window: "10s"
        autoscaling.knative.dev/max-scale: "4"
    spec:
      containers:
        - image: `+image+"\n"+traffic), 0o600); err != nil {
			t.Fatal(err)
		}
		s.mustKubectl("apply", "-f", manifest)
	}
	apply(slow, "")
	s.eventually("the dash service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "dash", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first run starts the browser, which lives as long as that run's context: no
	// timeout there.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	page := fmt.Sprintf("http://gantry.localhost:%d/", ports[6])
	row := `tr[data-service="default/dash"]`
	inPage(t, browser, 60*time.Second, "the page lists the service",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(row+` button`)),
		chromedp.Click(chromedp.CSS(row+` button`)),
		chromedp.WaitVisible(chromedp.CSS(`#chart-rps`)))

	// A burst: 8 clients of 300 ms requests against a target of 2 in flight per pod.
	url := "http://dash.default.localhost:" + strconv.Itoa(ports[6]) + "/"
	stop := burst(url+"?sleep=300", 8)
	var rpsMax, pods string
	waitPage(t, browser, 2*time.Minute, "the request graph rises and ready pods follow", func(ctx context.Context) (bool, error) {
		r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#chart-rps`), "data-max"))
		if err != nil {
			return false, err
		}
		rpsMax = r.Value
		p, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#chart-pods`), "data-latest"))
		if err != nil {
			return false, err
		}
		latest := p.Value
		pods = latest
		rps, _ := strconv.ParseFloat(rpsMax, 64)
		_, ready, _ := strings.Cut(latest, ",")
		n, _ := strconv.ParseFloat(ready, 64)
		return rps > 1 && n >= 2, fmt.Errorf("requests/s graph max %q, pods (desired,ready) now %q", rpsMax, latest)
	})
	stop()
	t.Logf("after the burst: requests/s max %s, pods (desired,ready) %s", rpsMax, pods)

	// Version two, with every request still on version one.
	apply(hello, `  traffic:
    - revisionName: dash-00001
      percent: 100
`)
	s.eventually("revision dash-00002 Ready", func(out string) bool { return out == "True" },
		"get", "revision", "dash-00002", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	inPage(t, browser, 60*time.Second, "the slider moves all traffic to dash-00002",
		chromedp.Poll[chromedp.Void](`document.querySelector('#rev-b option[value="dash-00002"]') !== null`, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.SetValue(chromedp.CSS(`#rev-a`), "dash-00001"),
		chromedp.SetValue(chromedp.CSS(`#rev-b`), "dash-00002"),
		chromedp.Focus(chromedp.CSS(`#slider`)),
		chromedp.KeyEvent(kb.End),
		chromedp.Poll[chromedp.Void](`document.getElementById('traffic-message').textContent.startsWith('Traffic set')`, chromedp.WithPollingTimeout(30*time.Second)))
	s.eventually("the Route sends 100% to dash-00002", func(out string) bool { return out == "dash-00002:100" },
		"get", "route", "dash", "-o", `jsonpath={range .status.traffic[?(@.percent>0)]}{.revisionName}:{.percent}{end}`)
	poll.Until(t, "requests answered by dash-00002", 60*time.Second, func(ctx context.Context) (bool, error) {
		for i := range 5 {
			code, body, err := get(ctx, url)
			if err != nil {
				return false, fmt.Errorf("request %d: %w", i, err)
			}
			if code != http.StatusOK || !strings.Contains(body, "Hello") {
				return false, fmt.Errorf("request %d: %d %q", i, code, body)
			}
		}
		return true, nil
	})
	// The page shows the new split.
	inPage(t, browser, 30*time.Second, "the page shows the new split",
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('#split li')].map(li => li.textContent).join('|') === 'dash-00002 100%'`, chromedp.WithPollingTimeout(20*time.Second)))
}

// inPage runs chromedp actions against the page within timeout.
func inPage(t *testing.T, browser context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitPage polls the page until check is satisfied.
func waitPage(t *testing.T, browser context.Context, timeout time.Duration, what string, check func(ctx context.Context) (bool, error)) {
	t.Helper()
	poll.Until(t, what, timeout, func(context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(browser, 5*time.Second)
		defer cancel()
		return check(ctx)
	})
}

// burst sends requests to url from n clients until the returned stop is called.
func burst(url string, n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second, Transport: localhostClient.Transport}
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

// fetch GETs url with an Authorization header (when set) and returns status and body.
func fetch(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hostIP is the address gantry server gave this machine on its pods' bridge (gantry-e2e0):
// not loopback, so a connection to it comes from the network as the dashboard sees it, and
// the packet stays in the network the test's server made.
func hostIP(t *testing.T) string {
	t.Helper()
	iface, err := net.InterfaceByName("gantry-e2e0")
	if err != nil {
		t.Fatalf("the server's bridge: %v", err)
	}
	addrs, err := iface.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatal("the server's bridge gantry-e2e0 has no IPv4 address")
	return ""
}
