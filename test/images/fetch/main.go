// Command fetch is a test image that makes requests from inside its pod, so a test on the
// host sees what a pod sees: the pod's resolver (its /etc/resolv.conf, search path and ndots)
// and its network. Its answers are JSON:
//
//	GET /fetch?url=U      {"status": 200, "body": "…"}   fetches U (a GET, the first 64 KiB)
//	GET /resolve?name=N   {"addrs": ["10.43.0.10"]}       resolves N
//	GET /file?path=P      {"body": "…"}                   reads P (/etc/resolv.conf, /etc/hosts)
//	GET /peer             {"body": "10.224.1.5"}          the caller's address as the pod sees it
//	GET /bench?url=U&n=N  {"nanos": [412000, …]}          times N GETs of U one after another, on
//	                                                      one kept-alive connection (&new=1: a new
//	                                                      connection each)
//
// Failures come back as {"error": "…"} with status 200, so the test tells a pod that cannot
// reach a name from a pod that does not answer. With ?server=host:port, names are resolved
// by that DNS server instead of the nameservers of /etc/resolv.conf (its search path still
// applies).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

const (
	timeout  = 10 * time.Second
	maxBody  = 64 << 10
	maxFiles = 64 << 10
)

func main() {
	serve.Main("fetch", newHandler())
}

type result struct {
	Status int      `json:"status,omitempty"`
	Body   string   `json:"body,omitempty"`
	Addrs  []string `json:"addrs,omitempty"`
	Error  string   `json:"error,omitempty"`
	Nanos  []int64  `json:"nanos,omitempty"`
}

// maxBench bounds the requests of one /bench.
const maxBench = 100000

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		reply(w, fetch(r.Context(), resolver(r.URL.Query().Get("server")), r.URL.Query().Get("url")))
	})
	mux.HandleFunc("GET /resolve", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		addrs, err := resolver(r.URL.Query().Get("server")).LookupHost(ctx, r.URL.Query().Get("name"))
		if err != nil {
			reply(w, result{Error: err.Error()})
			return
		}
		reply(w, result{Addrs: addrs})
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(r.URL.Query().Get("path"))
		if err != nil {
			reply(w, result{Error: err.Error()})
			return
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxFiles))
		if err != nil {
			reply(w, result{Error: err.Error()})
			return
		}
		reply(w, result{Body: string(b)})
	})
	mux.HandleFunc("GET /bench", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, err := strconv.Atoi(q.Get("n"))
		if err != nil || n < 1 || n > maxBench {
			reply(w, result{Error: fmt.Sprintf("n: %q is not a count from 1 to %d", q.Get("n"), maxBench)})
			return
		}
		reply(w, bench(r.Context(), q.Get("url"), n, q.Get("new") == "1"))
	})
	mux.HandleFunc("GET /peer", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			reply(w, result{Error: err.Error()})
			return
		}
		reply(w, result{Body: host})
	})
	return mux
}

// resolver is the pod's resolver, or one that asks server.
func resolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

func fetch(ctx context.Context, res *net.Resolver, url string) result {
	dialer := &net.Dialer{Timeout: timeout, Resolver: res}
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{Error: err.Error()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{Error: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return result{Status: resp.StatusCode, Error: err.Error()}
	}
	return result{Status: resp.StatusCode, Body: string(b)}
}

// bench times n GETs of url, one after another, each read to its end.
func bench(ctx context.Context, url string, n int, newConns bool) result {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: newConns, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	nanos := make([]int64, 0, n)
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return result{Error: err.Error()}
		}
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return result{Error: err.Error(), Nanos: nanos}
		}
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return result{Error: err.Error(), Nanos: nanos}
		}
		nanos = append(nanos, time.Since(began).Nanoseconds())
	}
	return result{Status: http.StatusOK, Nanos: nanos}
}

func reply(w http.ResponseWriter, r result) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r)
}
