package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestForwardsToTheUserPortWithTheClientsHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	hosts := make(chan string, 1)
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		hosts <- r.Host
		_, _ = io.WriteString(w, "hello "+r.URL.RequestURI())
	}))
	_, url := startQueue(t, testConfig(port))

	for _, tc := range []struct {
		name     string
		headers  map[string]string
		wantHost string
		want     map[string]string // header → value the user container sees; "" means absent
	}{{
		name:     "a client's own headers and Host pass; the peer is appended to X-Forwarded-For; Forwarded is built from it",
		headers:  map[string]string{"Host": "hello.default.localhost", "X-Custom": "kept", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
		wantHost: "hello.default.localhost",
		want: map[string]string{
			"X-Custom": "kept", "X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https",
			"Forwarded": "for=203.0.113.7;proto=https",
		},
	}, {
		name:     "a Forwarded header that is there stays as it was",
		headers:  map[string]string{"Host": "hello.default.localhost", "Forwarded": "for=198.51.100.1;host=hello.default.localhost;proto=http", "X-Forwarded-For": "198.51.100.1"},
		wantHost: "hello.default.localhost",
		want:     map[string]string{"Forwarded": "for=198.51.100.1;host=hello.default.localhost;proto=http", "X-Forwarded-For": "198.51.100.1, 127.0.0.1"},
	}, {
		name:     "a direct client gets X-Forwarded-For and no invented Forwarded",
		headers:  map[string]string{"Host": "hello.default.localhost"},
		wantHost: "hello.default.localhost",
		want:     map[string]string{"X-Forwarded-For": "127.0.0.1", "Forwarded": ""},
	}, {
		name:     "K-Original-Host becomes the Host",
		headers:  map[string]string{"Host": "hello-00001.default.svc", "K-Original-Host": "hello.example.com"},
		wantHost: "hello.example.com",
		want:     map[string]string{"K-Original-Host": ""},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, url+"/x?y=1", tc.headers)
			if code != http.StatusOK || body != "hello /x?y=1" {
				t.Fatalf("got %d %q, want 200 from the user container", code, body)
			}
			h, host := <-seen, <-hosts
			if host != tc.wantHost {
				t.Errorf("Host = %q, want %q", host, tc.wantHost)
			}
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestForwardedFromX(t *testing.T) {
	for _, tc := range []struct{ xff, xfh, xfp, want string }{
		{"", "", "", ""},
		{"1.2.3.4", "", "", "for=1.2.3.4"},
		{"1.2.3.4, 5.6.7.8", "example.com", "https", "for=1.2.3.4;host=example.com;proto=https, for=5.6.7.8"},
		{"2001:db8::1", "", "http", `for="[2001:db8::1]";proto=http`},
		{"", "example.com", "", "host=example.com"},
	} {
		h := http.Header{}
		for k, v := range map[string]string{"X-Forwarded-For": tc.xff, "X-Forwarded-Host": tc.xfh, "X-Forwarded-Proto": tc.xfp} {
			if v != "" {
				h.Set(k, v)
			}
		}
		if got := forwardedFromX(h); got != tc.want {
			t.Errorf("forwardedFromX(%q, %q, %q) = %q, want %q", tc.xff, tc.xfh, tc.xfp, got, tc.want)
		}
	}
}

func TestAnswers502WhenTheUserContainerIsDown(t *testing.T) {
	_, url := startQueue(t, testConfig(freePort(t)))
	if code, _ := get(t, url, nil); code != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", code)
	}
}

func TestBreakerAdmitsConcurrencyQueuesTenTimesAndRefusesTheRestWith503(t *testing.T) {
	const cc = 2
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}))
	cfg := testConfig(port)
	cfg.ContainerConcurrency = cc
	q, url := startQueue(t, cfg)

	codes := make(chan int, 11*cc)
	var wg sync.WaitGroup
	for range 11 * cc { // cc run, 10 × cc wait
		wg.Go(func() {
			code, _ := get(t, url, nil)
			codes <- code
		})
	}
	waitFor(t, "every slot and queue place taken", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return q.breaker.InFlight() == 11*cc && running == cc
	})
	code, body := get(t, url, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "queue full") {
		t.Errorf("beyond the queue: %d %q, want 503 saying the queue is full", code, body)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("an admitted request got %d, want 200", c)
		}
	}
	if most != cc {
		t.Errorf("the user container saw %d requests at once, want %d", most, cc)
	}
}

func TestUnlimitedConcurrencyHasNoBreaker(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	running := 0
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		running++
		mu.Unlock()
		<-release
	}))
	_, url := startQueue(t, testConfig(port)) // ContainerConcurrency 0
	var wg sync.WaitGroup
	const n = 30
	for range n {
		wg.Go(func() {
			if code, _ := get(t, url, nil); code != http.StatusOK {
				t.Errorf("status %d, want 200", code)
			}
		})
	}
	waitFor(t, "all requests at the user container", func() bool { mu.Lock(); defer mu.Unlock(); return running == n })
	close(release)
	wg.Wait()
}

func TestStatsCountRequestsAndLeaveActivatorRequestsOutOfDirectDemand(t *testing.T) {
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	q, url := startQueue(t, testConfig(port))
	q.stats.Report(time.Now()) // start a clean window
	for _, h := range []map[string]string{nil, nil, {"K-Proxy-Request": "activator"}, {"User-Agent": "kube-probe/1.33"} /* not demand */} {
		get(t, url, h)
		settled(t, q) // one at a time: the next must not overlap the last one's bookkeeping
	}
	got := q.stats.Report(time.Now())
	if got.RequestCount != 3 || got.ProxiedRequestCount != 1 || got.PeakConcurrency != 1 {
		t.Errorf("report = %+v, want 3 requests, 1 proxied, peak 1", got)
	}
}

func TestRequestMetricsWithKnativesNames(t *testing.T) {
	release := make(chan struct{})
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	cfg := testConfig(port)
	cfg.ContainerConcurrency = 1
	q, url := startQueue(t, cfg)
	get(t, url, nil)
	get(t, url+"/missing", nil)
	settled(t, q) // the slot is free again before the blocking requests take it
	// One blocks the slot, ten wait, one more is refused by the breaker: a 503 the user
	// container never saw.
	var wg sync.WaitGroup
	for range 11 {
		wg.Go(func() { get(t, url+"/block", nil) })
	}
	waitFor(t, "the queue full", func() bool { return q.breaker.InFlight() == 11 })
	get(t, url, nil)
	close(release)
	wg.Wait()
	settled(t, q)

	rec := httptest.NewRecorder()
	q.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	labels := `configuration_name="hello",container_name="queue-proxy",namespace_name="default",pod_name="hello-00001-deployment-abc",`
	for _, want := range []string{
		`revision_request_count{` + labels + `response_code="200",response_code_class="2xx",revision_name="hello-00001",service_name="hello"} 12`,
		`revision_request_count{` + labels + `response_code="404",response_code_class="4xx",revision_name="hello-00001",service_name="hello"} 1`,
		`revision_request_count{` + labels + `response_code="503",response_code_class="5xx",revision_name="hello-00001",service_name="hello"} 1`,
		`revision_app_request_count{` + labels + `response_code="200",response_code_class="2xx",revision_name="hello-00001",service_name="hello"} 12`,
		`revision_request_latencies_bucket{`,
		`revision_app_request_latencies_count{`,
		`# TYPE revision_queue_depth gauge`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s in\n%s", want, rec.Body.String())
		}
	}
	if strings.Contains(rec.Body.String(), `revision_app_request_count{`+labels+`response_code="503"`) {
		t.Error("the breaker's 503 counted as an app request")
	}
}

// settled waits until q has finished its bookkeeping for every request: a client can read
// its response a moment before the queue-proxy records it.
func settled(t *testing.T, q *QueueProxy) {
	t.Helper()
	waitFor(t, "no request in flight", func() bool { return q.drainer.inflight.Load() == 0 })
}

func TestWebsocketUpgradePassesBothWays(t *testing.T) {
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		// Echo lines until the client closes.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo " + line)
			_ = brw.Flush()
		}
	}))
	cfg := testConfig(port)
	cfg.ContainerConcurrency = 1
	q, url := startQueue(t, cfg)

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: hello\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"one\n", "two\n"} {
		fmt.Fprint(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != "echo "+msg {
			t.Errorf("read %q, want %q", got, "echo "+msg)
		}
	}
	// The websocket holds the slot while it lives.
	if got := q.breaker.InFlight(); got != 1 {
		t.Errorf("in flight during the websocket = %d, want 1", got)
	}
}

func TestServerSentEventsStream(t *testing.T) {
	sent := make(chan struct{})
	finish := make(chan struct{})
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		close(sent)
		<-finish // the handler has not ended when the client reads the first event
		_, _ = io.WriteString(w, "data: last\n\n")
	}))
	_, url := startQueue(t, testConfig(port))
	resp, err := http.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "data: first\n" {
		t.Errorf("first line = %q", line)
	}
	// The handler flushed the first event and now waits on finish: the event came through
	// while the response was still open. (It closes sent right after the flush, which may
	// run a moment after the client read the event.)
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Error("the user container never finished sending its first event")
	}
	close(finish)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: last\n\n" {
		t.Errorf("rest = %q", rest)
	}
}

func TestH2C(t *testing.T) {
	user := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	user.Config.Protocols = new(http.Protocols)
	user.Config.Protocols.SetUnencryptedHTTP2(true) // h2c only, as a gRPC server
	user.Start()
	t.Cleanup(user.Close)

	h2cClient := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2cClient.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)

	for _, tc := range []struct {
		name     string
		protocol string
		client   *http.Client
		want     string
	}{
		{"user port h2c, client HTTP/1.1", "h2c", http.DefaultClient, "HTTP/2.0"},
		{"user port h2c, client h2c", "h2c", h2cClient, "HTTP/2.0"},
		{"protocol unset follows an h2c client", "", h2cClient, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(portOf(t, user.URL))
			cfg.UserProtocol = tc.protocol
			_, url := startQueue(t, cfg)
			resp, err := tc.client.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, b, tc.want)
			}
		})
	}
}

func TestKnativeProbeHeaderIsAnsweredNotForwarded(t *testing.T) {
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a probe reached the user container")
	}))
	q, url := startQueue(t, testConfig(port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.readiness.Run(ctx)
	waitFor(t, "ready", q.readiness.Ready)
	code, body := get(t, url, map[string]string{"K-Network-Probe": "queue"})
	if code != http.StatusOK || body != "queue" {
		t.Errorf("probe: %d %q, want 200 \"queue\"", code, body)
	}
	if code, _ := get(t, url, map[string]string{"K-Network-Probe": "activator"}); code != http.StatusBadRequest {
		t.Errorf("probe with another value: %d, want 400", code)
	}
}
