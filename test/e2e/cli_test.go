package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gantry runs a gantry CLI command against the server, as a user with GANTRY_DATA_DIR set
// would, with the gateway and registry the server was given.
func (s *server) gantry(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	cmd.Env = append(os.Environ(), "GANTRY_DATA_DIR="+s.dataDir, "KUBECONFIG=",
		fmt.Sprintf("GANTRY_GATEWAY=127.0.0.1:%d", s.ports[6]),
		fmt.Sprintf("GANTRY_REGISTRY=127.0.0.1:%d", s.ports[4]))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func (s *server) mustGantry(args ...string) string {
	s.t.Helper()
	out, errOut, err := s.gantry(args...)
	if err != nil {
		s.t.Fatalf("gantry %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// gantryFails runs a command that must fail with one error line containing want; progress
// lines the command printed before it failed may come first.
func (s *server) gantryFails(want string, args ...string) {
	s.t.Helper()
	_, errOut, err := s.gantry(args...)
	if err == nil {
		s.t.Fatalf("gantry %s succeeded, want it to fail with %q", strings.Join(args, " "), want)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "gantry: ") || !strings.Contains(last, want) || strings.Count(errOut, "gantry: ") != 1 {
		s.t.Errorf("gantry %s: stderr %q, want it to end in one error line with %q", strings.Join(args, " "), errOut, want)
	}
}

// TestCLIServiceLifecycle: create → update → traffic split → delete, deploy from source,
// invoke, logs and top, with the gantry CLI only.
func TestCLIServiceLifecycle(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	img := buildImage(t, ports[4], "hello")

	t.Run("deploy from source", func(t *testing.T) {
		url := strings.TrimSpace(s.mustGantry("deploy", "../../samples/hello"))
		if want := fmt.Sprintf("http://hello.default.localhost:%d", ports[6]); url != want {
			t.Fatalf("deploy printed %q, want %q", url, want)
		}
		if body := httpGetRetry(t, url); body != "Hello World!\n" {
			t.Errorf("GET %s = %q, want Hello World!", url, body)
		}
		_, errOut, err := s.gantry("deploy", "../../samples/hello")
		if err != nil || !strings.Contains(errOut, "Unchanged: revision hello-00001") {
			t.Errorf("second deploy of the same source: err %v, stderr:\n%s", err, errOut)
		}
		s.mustGantry("deploy", "../../samples/hello", "--env", "TARGET=Source")
		if body := httpGetRetry(t, url); body != "Hello Source!\n" {
			t.Errorf("after a deploy with TARGET: GET = %q", body)
		}
		if out := s.mustGantry("revision", "list", "-s", "hello"); strings.Count(out, "hello-0000") != 2 {
			t.Errorf("revisions after three deploys, one unchanged:\n%s", out)
		}
		if out := s.mustGantry("logs", "hello"); !strings.Contains(out, "[hello-00002-deployment-") || !strings.Contains(out, "listening on :8080") {
			t.Errorf("gantry logs hello:\n%s", out)
		}
	})

	t.Run("create, update, split, delete", func(t *testing.T) {
		url := strings.TrimSpace(s.mustGantry("service", "create", "web", "--image", img, "--env", "TARGET=one", "--scale-min", "1"))
		if body := httpGetRetry(t, url); body != "Hello one!\n" {
			t.Fatalf("GET %s = %q", url, body)
		}
		s.mustGantry("service", "update", "web", "--env", "TARGET=two")
		if out := s.mustGantry("invoke", "web"); out != "Hello two!\n" {
			t.Errorf("invoke after update = %q", out)
		}
		s.mustGantry("service", "update", "web", "--traffic", "web-00001=50,@latest=50", "--tag", "web-00001=one")
		if out := s.mustGantry("invoke", "web", "--tag", "one"); out != "Hello one!\n" {
			t.Errorf("invoke --tag one = %q", out)
		}
		seen := map[string]bool{}
		for range 40 {
			seen[s.mustGantry("invoke", "web")] = true
		}
		if !seen["Hello one!\n"] || !seen["Hello two!\n"] {
			t.Errorf("a 50/50 split answered only %v in 40 calls", seen)
		}
		desc := s.mustGantry("service", "describe", "web")
		for _, want := range []string{"50%  @latest (web-00002)", "50%  web-00001 #one", "++ Ready"} {
			if !strings.Contains(desc, want) {
				t.Errorf("describe lacks %q:\n%s", want, desc)
			}
		}
		var svc struct {
			Status struct {
				Traffic []struct {
					RevisionName string `json:"revisionName"`
					Percent      int    `json:"percent"`
					Tag          string `json:"tag"`
				} `json:"traffic"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(s.mustGantry("service", "describe", "web", "-o", "json")), &svc); err != nil || len(svc.Status.Traffic) != 2 {
			t.Errorf("describe -o json: %v, traffic %+v", err, svc.Status.Traffic)
		}
		if out := s.mustGantry("route", "describe", "web"); !strings.Contains(out, fmt.Sprintf("URL:  http://one-web.default.localhost:%d", ports[6])) {
			t.Errorf("route describe lacks the tag URL:\n%s", out)
		}
		s.gantryFails("revision web-00001 is in service web's traffic", "revision", "delete", "web-00001")
		if out := s.mustGantry("top", "--once", "--interval", "200ms", "-s", "web"); !strings.Contains(out, "web-00001") || !strings.Contains(out, "web-00002") {
			t.Errorf("top --once:\n%s", out)
		}
		s.mustGantry("service", "update", "web", "--traffic", "@latest=100", "--untag", "one")
		s.mustGantry("revision", "delete", "web-00001")
		s.mustGantry("service", "delete", "web")
		if out := s.mustGantry("service", "list"); strings.Contains(out, "web") {
			t.Errorf("web is still listed after delete:\n%s", out)
		}
		if out := s.mustGantry("revision", "list"); strings.Contains(out, "web-") {
			t.Errorf("web's revisions outlive it:\n%s", out)
		}
	})

	t.Run("a failed revision exits non-zero with its reason", func(t *testing.T) {
		s.gantryFails("revision broken-00001 failed: ContainerMissing", "service", "create", "broken", "--image", fmt.Sprintf("127.0.0.1:%d/missing", ports[4]))
	})
}

// TestCLIErrors: each refusal is one line, exits non-zero and leaves nothing behind.
func TestCLIErrors(t *testing.T) {
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	s.mustGantry("service", "create", "kept", "--image", fmt.Sprintf("127.0.0.1:%d/hello", ports[4]), "--no-wait")
	generation := func() string {
		return s.mustKubectl("get", "ksvc", "kept", "-o", "jsonpath={.metadata.generation}")
	}
	before := generation()

	t.Run("unknown service", func(t *testing.T) {
		for _, args := range [][]string{
			{"service", "describe", "nope"}, {"service", "update", "nope", "--env", "A=1"},
			{"service", "delete", "nope"}, {"invoke", "nope"}, {"logs", "nope"}, {"revision", "list", "-s", "nope"},
		} {
			s.gantryFails(`service "nope" not found in namespace "default"`, args...)
		}
		s.gantryFails(`revision "nope-00001" not found`, "revision", "describe", "nope-00001")
		s.gantryFails(`route "nope" not found`, "route", "describe", "nope")
	})
	t.Run("bad traffic spec", func(t *testing.T) {
		s.gantryFails("--traffic: the percents sum to 90, want 100", "service", "update", "kept", "--traffic", "a=50,b=40")
		if got := generation(); got != before {
			t.Errorf("generation %s after a refused update, want %s", got, before)
		}
	})
	t.Run("no Go program", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "empty")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.gantryFails("no Go program here", "deploy", dir)
		if out := s.mustGantry("service", "list"); strings.Contains(out, "empty") {
			t.Errorf("a service was created:\n%s", out)
		}
	})
	t.Run("registry refuses the push", func(t *testing.T) {
		refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			http.Error(w, `{"errors":[{"code":"DENIED","message":"pushes are not allowed"}]}`, http.StatusForbidden)
		}))
		defer refusing.Close()
		reg := strings.TrimPrefix(refusing.URL, "http://")
		s.gantryFails("the registry refused the image", "deploy", "../../samples/hello", "--name", "refused", "--registry", reg)
		s.gantryFails("no registry answers at 127.0.0.1:1", "deploy", "../../samples/hello", "--name", "refused", "--registry", "127.0.0.1:1")
		if out := s.mustGantry("service", "list"); strings.Contains(out, "refused") {
			t.Errorf("a service was created:\n%s", out)
		}
	})
	t.Run("server not running", func(t *testing.T) {
		empty := &server{t: t, dataDir: t.TempDir(), ports: ports}
		empty.gantryFails("gantry server is not running here: no kubeconfig at", "service", "list")
		s.stop()
		s.gantryFails("gantry server is not running: nothing answers at https://127.0.0.1:", "service", "list")
	})
}
