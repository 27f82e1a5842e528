// Package queue is the queue-proxy that runs beside every revision's user container. For now
// it forwards each request on its serving port to the user container's port on loopback and
// drains in-flight requests on shutdown; concurrency limits, timeouts and metrics come with
// the data-plane work.
package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// Config is read from the environment the revision's Deployment sets.
type Config struct {
	ServingPort int // contract.EnvServingPort, default contract.HTTPPort
	AdminPort   int // contract.EnvAdminPort, default contract.AdminPort
	UserPort    int // contract.EnvUserPort, default 8080
	// DrainTimeout bounds how long shutdown waits for requests in flight.
	DrainTimeout time.Duration
}

// ConfigFromEnv reads the queue-proxy's environment; a malformed value names its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{ServingPort: contract.HTTPPort, AdminPort: contract.AdminPort, UserPort: 8080, DrainTimeout: 30 * time.Second}
	for _, v := range []struct {
		name string
		dst  *int
	}{{contract.EnvServingPort, &c.ServingPort}, {contract.EnvAdminPort, &c.AdminPort}, {contract.EnvUserPort, &c.UserPort}} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("%s: %q is not a port", v.name, s)
		}
		*v.dst = n
	}
	if s := getenv(contract.EnvTimeoutSeconds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("%s: %q is not a number of seconds", contract.EnvTimeoutSeconds, s)
		}
		if n > 0 {
			c.DrainTimeout = time.Duration(n) * time.Second
		}
	}
	return c, nil
}

// Handler forwards requests to the user container on 127.0.0.1:userPort.
func Handler(userPort int) http.Handler {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(userPort))}
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
	}
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "queue-proxy: user container: "+err.Error(), http.StatusBadGateway)
	}
	return p
}

// Run serves until ctx ends, then stops taking requests and finishes those in flight.
func Run(ctx context.Context, c Config) error {
	serving := &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(c.ServingPort)),
		Handler:           Handler(c.UserPort),
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
	admin := &http.Server{
		Addr: net.JoinHostPort("", strconv.Itoa(c.AdminPort)),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok"))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errs := make(chan error, 2)
	for _, s := range []*http.Server{serving, admin} {
		go func() {
			if err := s.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("queue-proxy listening on %s: %w", s.Addr, err)
			}
		}()
	}
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), c.DrainTimeout)
	defer cancel()
	return errors.Join(serving.Shutdown(drain), admin.Shutdown(drain))
}
