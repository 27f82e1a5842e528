package tracing

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Bounds of the relay: a pod's export batch, the exports in flight at once, and the time
// one may take.
const (
	relayMaxBody     = 4 << 20
	relayMaxInFlight = 16
	relayTimeout     = 10 * time.Second
)

// Relay forwards OTLP/HTTP trace exports (POST /v1/traces) to the collector at endpoint. The
// gateway serves it on the pods' side: queue-proxies run in network namespaces that cannot
// reach a collector on the host's loopback, and their spans reach it through this. Bodies
// are bounded, as are the exports in flight: past that the relay answers 503 and the
// exporter retries later.
func Relay(endpoint *url.URL) http.Handler {
	target := endpoint.JoinPath("v1", "traces").String()
	client := &http.Client{Timeout: relayTimeout}
	slots := make(chan struct{}, relayMaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "gantry trace relay: only POST /v1/traces", http.StatusNotFound)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			http.Error(w, "gantry trace relay: busy", http.StatusServiceUnavailable)
			return
		}
		if r.ContentLength > relayMaxBody {
			http.Error(w, "gantry trace relay: body too large", http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, relayMaxBody+1))
		if err != nil {
			http.Error(w, "gantry trace relay: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > relayMaxBody {
			http.Error(w, "gantry trace relay: body too large", http.StatusRequestEntityTooLarge)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), relayTimeout)
		defer cancel()
		out, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, h := range []string{"Content-Type", "Content-Encoding"} {
			if v := r.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, "gantry trace relay: collector: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, relayMaxBody))
	})
}
