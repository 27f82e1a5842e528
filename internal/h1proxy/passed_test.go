package h1proxy

import (
	"fmt"
	"slices"
	"testing"
)

// TestPassedRequestIsThePassingHopsHead: on a passed connection a request is seen, and sent on,
// as the head the passing hop would have sent: that hop's head is not built and read again,
// its fields stand over the client's. Each case is checked against that head, built and read.
func TestPassedRequestIsThePassingHopsHead(t *testing.T) {
	type fields struct {
		host string
		set  [][2]string
		drop []string
	}
	clients := []string{
		"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nUser-Agent: wrk\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 192.0.2.2\r\n" +
			"Forwarded: for=192.0.2.1\r\nK-Proxy-Request: activator\r\nX-Custom: one\r\nx-custom: two\r\n\r\n",
		"HEAD /h HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\nHost: a.test\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n" +
			"TE: trailers\r\nProxy-Connection: keep-alive\r\nK-Original-Host: client.test\r\nAccept: */*\r\n\r\n",
		"OPTIONS /o HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
	}
	priors := []fields{
		{},
		{set: [][2]string{{"X-Forwarded-For", "192.0.2.9"}, {"X-Forwarded-Proto", "http"}, {"Forwarded", "for=192.0.2.9"},
			{"K-Original-Host", "a.test"}, {"Knative-Serving-Revision", "r1"}}, drop: []string{"K-Proxy-Request"}},
		{host: "inner.test", set: [][2]string{{"X-Custom", "gw"}, {"X-Custom", "gw2"}, {"TE", "trailers"}}, drop: []string{"Accept", "x-custom"}},
		{drop: []string{"User-Agent", "X-Forwarded-For"}},
	}
	handlers := []fields{
		{},
		{host: "a.test", drop: []string{"K-Original-Host"}, set: [][2]string{{"X-Forwarded-For", "192.0.2.9, 10.0.0.1"}}},
		{set: [][2]string{{"Forwarded", "for=x"}, {"X-Custom", "qp"}}, drop: []string{"Knative-Serving-Revision", "User-Agent"}},
	}
	lookups := []string{"Host", "host", "X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "K-Original-Host",
		"K-Proxy-Request", "X-Custom", "X-Secret", "Connection", "Keep-Alive", "TE", "Proxy-Connection", "Accept",
		"User-Agent", "Knative-Serving-Revision", "Content-Length", "X-Missing"}
	forward := func(fs fields) *Forward {
		f := &Forward{Host: fs.host}
		for _, kv := range fs.set {
			f.Set(kv[0], kv[1])
		}
		for _, d := range fs.drop {
			f.Drop(d)
		}
		return f
	}
	for ci, client := range clients {
		for pi, pf := range priors {
			for hi, hf := range handlers {
				name := func() string { return fmt.Sprintf("client %d, passing hop %d, handler %d", ci, pi, hi) }
				// As a head that the passing hop sent: built, then read like any head.
				c1 := &conn{}
				req1, _, ok := c1.plain([]byte(client))
				if !ok {
					t.Fatalf("%s: the client's head is not plain", name())
				}
				built := string(c1.requestHead(nil, req1, forward(pf)))
				c2 := &conn{}
				want, _, ok := c2.plain([]byte(built))
				if !ok {
					t.Fatalf("%s: the passing hop's head %q is not plain", name(), built)
				}
				// As this hop sees it: the client's head, with the passing hop's fields over it.
				c := &conn{}
				got, _, _ := c.plain([]byte(client))
				got.prior = forward(pf)
				if !got.prior.sendable() {
					t.Fatalf("%s: the passing hop's fields are refused", name())
				}
				for _, n := range lookups {
					if g, w := got.Get(n), want.Get(n); g != w {
						t.Errorf("%s: Get(%q) = %q, the passing hop sent %q", name(), n, g, w)
					}
					if g, w := got.Has(n), want.Has(n); g != w {
						t.Errorf("%s: Has(%q) = %v, the passing hop sent it: %v", name(), n, g, w)
					}
					if g, w := got.Values(n), want.Values(n); !slices.Equal(g, w) {
						t.Errorf("%s: Values(%q) = %q, the passing hop sent %q", name(), n, g, w)
					}
				}
				if got.Path() != want.Path() || got.Method != want.Method {
					t.Errorf("%s: %s %s, the passing hop sent %s %s", name(), got.Method, got.Path(), want.Method, want.Path())
				}
				sent := string(c.requestHead(nil, got, forward(hf)))
				if w := string(c2.requestHead(nil, want, forward(hf))); sent != w {
					t.Errorf("%s: sent\n%q\nwant, as from the passing hop's head,\n%q", name(), sent, w)
				}
			}
		}
	}
}

func TestPassingHopFieldsMustBeSendable(t *testing.T) {
	for _, f := range []*Forward{
		{Host: "a.test\r\nX-Injected: 1"},
		{set: []setField{{"X-Ok", "a\nb"}}},
		{set: []setField{{"Bad Name", "v"}}},
		{set: []setField{{"", "v"}}},
		{set: []setField{{"Host", "other.test"}}},
		{set: []setField{{"connection", "X-Ok"}}},
		{set: []setField{{"X-Ok", " padded"}}},
		{set: []setField{{"X-Ok", "del\x7f"}}},
	} {
		if f.sendable() {
			t.Errorf("Forward{Host: %q, set: %q} is taken as sendable", f.Host, f.set)
		}
	}
	ok := &Forward{Host: "a.test", set: []setField{{"X-Forwarded-For", "192.0.2.1, 10.0.0.1"}, {"X-Tab", "a\tb"}, {"X-Empty", ""}}}
	if !ok.sendable() {
		t.Errorf("Forward{Host: %q, set: %q} is refused", ok.Host, ok.set)
	}
}

// The check of the passing hop's fields is kept from one request to the next only while they
// stay the same.
func TestPassingHopFieldsAreCheckedWhenTheyChange(t *testing.T) {
	value := "192.0.2.1"
	c := &conn{passed: &Passed{Host: "a.test", Rewrite: func(_ *Request, f *Forward) { f.Set("X-Forwarded-For", value) }}}
	for i, v := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3\r\nX-Injected: 1", "192.0.2.3"} {
		value = v
		req, _, ok := c.plain([]byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
		if !ok {
			t.Fatal("a plain request is not taken")
		}
		want := plainValue(v)
		if got := c.rewrite(req) != nil; got != want {
			t.Errorf("request %d, X-Forwarded-For %q from the passing hop: served %v, want %v", i+1, v, got, want)
		}
	}
}
