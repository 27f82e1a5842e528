package queue

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// discardWriter is the cheapest http.ResponseWriter: it measures the chain, not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// BenchmarkHandlerChain is the cost of the queue-proxy's own handlers per request, with the
// proxy replaced by a handler that answers at once (Knative #9126 measured ≈ 1 µs).
func BenchmarkHandlerChain(b *testing.B) {
	for _, cc := range []int{0, 10} {
		b.Run("cc"+strconv.Itoa(cc), func(b *testing.B) {
			cfg := testConfig(8080)
			cfg.ContainerConcurrency = cc
			q, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			h := newHandler(q, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte("Hello World!\n"))
			}))
			r := httptest.NewRequest(http.MethodGet, "http://hello.default.localhost/", nil)
			r.RemoteAddr = "10.0.0.1:1234"
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
