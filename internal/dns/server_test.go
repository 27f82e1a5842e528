package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// upstream is a fake resolver on loopback: it answers every A question with 192.0.2.1, and
// "big.example." with 100 addresses, which do not fit in a UDP answer.
func upstream(t *testing.T) (port string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Skipf("the fake upstream's TCP port is taken: %v", err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		resp := new(mdns.Msg).SetReply(req)
		q := req.Question[0]
		switch {
		case q.Name == "slow.example.":
			time.Sleep(3 * time.Second)
		case q.Name == "big.example.":
			for i := range 100 {
				resp.Answer = append(resp.Answer, &mdns.A{Hdr: header(q.Name, mdns.TypeA), A: net.IPv4(198, 51, 100, byte(i))})
			}
		case q.Qtype == mdns.TypeA:
			resp.Answer = []mdns.RR{&mdns.A{Hdr: header(q.Name, mdns.TypeA), A: net.IPv4(192, 0, 2, 1)}}
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			size := mdns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			resp.Truncate(size)
		}
		_ = w.WriteMsg(resp)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return port
}

// serve runs a server on loopback whose host resolvers are in resolvConf, with upstreamPort
// as their port; it returns the server and its address.
func serve(t *testing.T, resolvConf, upstreamPort string) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(resolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Addr: net.IPv4(127, 0, 0, 1), Gateway: gatewayIP, ResolvConf: path})
	s.fwd.port = upstreamPort
	if err := s.listen(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	z := s.Zone()
	z.SetService(clusterIPService("default", "web", "10.43.0.10"))
	z.SetIngress(ingress("default", "hello", "ClusterLocal", "hello.default.svc.cluster.local"))
	z.SetService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
	})
	return s, s.Addr()
}

func query(t *testing.T, addr, proto, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: proto, Timeout: 10 * time.Second}
	resp, _, err := c.Exchange(new(mdns.Msg).SetQuestion(name, qtype), addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", mdns.TypeToString[qtype], name, proto, err)
	}
	return resp
}

func TestServerAnswers(t *testing.T) {
	port := upstream(t)
	_, addr := serve(t, "nameserver 127.0.0.1\n", port)
	for _, proto := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name   string
			qtype  uint16
			rcode  int
			auth   bool
			answer []string
			soa    bool
		}{
			{name: "hello.default.svc.cluster.local.", qtype: mdns.TypeA, auth: true,
				answer: []string{"hello.default.svc.cluster.local. 5 IN A 10.42.0.1"}},
			{name: "web.default.svc.cluster.local.", qtype: mdns.TypeA, auth: true,
				answer: []string{"web.default.svc.cluster.local. 5 IN A 10.43.0.10"}},
			{name: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA, auth: true, soa: true},
			{name: "nope.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, auth: true, soa: true},
			{name: "ext.default.svc.cluster.local.", qtype: mdns.TypeA, auth: true, answer: []string{
				"example.com. 5 IN A 192.0.2.1",
				"ext.default.svc.cluster.local. 5 IN CNAME example.com.",
			}},
			{name: "example.org.", qtype: mdns.TypeA, answer: []string{"example.org. 5 IN A 192.0.2.1"}},
		} {
			t.Run(proto+"/"+tc.name+"/"+mdns.TypeToString[tc.qtype], func(t *testing.T) {
				resp := query(t, addr, proto, tc.name, tc.qtype)
				if resp.Rcode != tc.rcode {
					t.Errorf("rcode = %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
				}
				if resp.Authoritative != tc.auth || !resp.RecursionAvailable {
					t.Errorf("aa=%v ra=%v, want aa=%v ra=true", resp.Authoritative, resp.RecursionAvailable, tc.auth)
				}
				if got := rrs(resp.Answer); fmt.Sprint(got) != fmt.Sprint(tc.answer) {
					t.Errorf("answer = %q, want %q", got, tc.answer)
				}
				if soa := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == mdns.TypeSOA; soa != tc.soa {
					t.Errorf("authority = %v, want SOA: %v", resp.Ns, tc.soa)
				}
			})
		}
	}
}

func TestServerTruncatesUDPAndAnswersInFullOverTCP(t *testing.T) {
	port := upstream(t)
	_, addr := serve(t, "nameserver 127.0.0.1\n", port)
	udp := query(t, addr, "udp", "big.example.", mdns.TypeA)
	if !udp.Truncated || len(udp.Answer) >= 100 {
		t.Errorf("over UDP: truncated=%v with %d answers, want truncated", udp.Truncated, len(udp.Answer))
	}
	udp.Compress = true
	if resp, _ := udp.Pack(); len(resp) > mdns.MinMsgSize {
		t.Errorf("over UDP without EDNS: %d bytes, want at most %d", len(resp), mdns.MinMsgSize)
	}
	tcp := query(t, addr, "tcp", "big.example.", mdns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("over TCP: truncated=%v with %d answers, want all 100", tcp.Truncated, len(tcp.Answer))
	}
}

func TestServerWithoutUpstreamAnswersTheClusterAndServfailsTheRest(t *testing.T) {
	_, addr := serve(t, "# no nameserver\n", "53")
	if resp := query(t, addr, "udp", "example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("example.org: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	if resp := query(t, addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Errorf("web: %v", resp)
	}
}

func TestServerBoundsForwards(t *testing.T) {
	port := upstream(t)
	s, addr := serve(t, "nameserver 127.0.0.1\n", port)
	// Every forwarding slot is taken: the next forward is refused at once, the zone still
	// answers.
	for range maxForwards {
		s.forwards <- struct{}{}
	}
	defer func() {
		for range maxForwards {
			<-s.forwards
		}
	}()
	began := time.Now()
	if resp := query(t, addr, "udp", "example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("forward past the bound: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("refusal took %s", d)
	}
	if resp := query(t, addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("zone answer while forwards are full: %v", resp)
	}
}

func TestServerTimesOutASlowUpstream(t *testing.T) {
	port := upstream(t)
	_, addr := serve(t, "nameserver 127.0.0.1\n", port)
	began := time.Now()
	resp := query(t, addr, "udp", "slow.example.", mdns.TypeA)
	if resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("slow upstream: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	if d := time.Since(began); d < upstreamTimeout || d > upstreamTimeout+time.Second {
		t.Errorf("answered after %s, want about %s", d, upstreamTimeout)
	}
}

func TestForwarderRereadsResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	write := func(s string, mod time.Time) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	f := newForwarder(path, "10.42.0.1:53")
	now := time.Unix(1000, 0)
	write("nameserver 192.0.2.53\nnameserver 10.42.0.1\nnameserver 192.0.2.53\n", now)
	if got := fmt.Sprint(f.upstreams(now)); got != "[192.0.2.53:53]" {
		t.Errorf("upstreams = %s, want [192.0.2.53:53] (no self, no repeats)", got)
	}
	write("nameserver 127.0.0.53\n", now.Add(time.Second))
	if got := fmt.Sprint(f.upstreams(now.Add(time.Second))); got != "[192.0.2.53:53]" {
		t.Errorf("upstreams re-read before recheckEvery: %s", got)
	}
	if got := fmt.Sprint(f.upstreams(now.Add(recheckEvery + time.Second))); got != "[127.0.0.53:53]" {
		t.Errorf("upstreams after a change = %s, want the loopback stub [127.0.0.53:53]", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := f.upstreams(now.Add(2*recheckEvery + time.Second)); len(got) != 0 {
		t.Errorf("upstreams without the file = %v, want none", got)
	}
}
