// Package scalerelay carries what the activators of all the servers of a cluster tell the
// autoscaler — "a request waits for a revision at zero" and each second's load of the requests
// they hold — to the one autoscaler that acts: the serving leader's. Knative's activators send
// their stats to the autoscaler's leader over a connection; here each server's autoscaler has
// an HTTPS endpoint (Server), answered by the leader only, and each server's activator talks to
// it through a Relay, which finds the leader through the serving leader's Lease
// (kube-system/gantry-serving-controllers): its holder's identity ends with the URL of the
// leader's endpoint. On the leader itself, the Relay calls the autoscaler in-process.
//
// The channel is authenticated both ways with the cluster's CA: the endpoint presents the
// server's serving certificate and takes only clients whose certificate the cluster CA signed
// for Gantry's controllers (system:gantry), which only servers hold.
package scalerelay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gantry-run/gantry/internal/lifecycle"
)

// Paths of the endpoint.
const (
	// ScaleFromZeroPath takes one wake-up: {"namespace": …, "revision": …}.
	ScaleFromZeroPath = "/v1/scale-from-zero"
	// StatsPath takes a batch of loads: [{"namespace", "revision", "concurrency", "rps"}, …].
	StatsPath = "/v1/stats"
)

// Local is the autoscaler in this process: kpa.Autoscaler.
type Local interface {
	ScaleFromZero(ctx context.Context, namespace, revision string) error
	Report(namespace, name string, now time.Time, concurrency, rps float64)
}

// WakeUp is the body of a ScaleFromZeroPath request.
type WakeUp struct {
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
}

// Stat is one revision's load over the last second, as the activator measured it.
type Stat struct {
	Namespace   string  `json:"namespace"`
	Revision    string  `json:"revision"`
	Concurrency float64 `json:"concurrency"`
	RPS         float64 `json:"rps"`
}

// identitySep separates the host part of an identity from the endpoint's URL.
const identitySep = " "

// Identity is this server's identity in the serving leader's Lease: the host name, a random
// part (two servers of one host differ), and the URL of its autoscaler's endpoint.
func Identity(endpoint string) (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return host + "_" + hex.EncodeToString(b) + identitySep + endpoint, nil
}

// EndpointOf is the URL of the autoscaler's endpoint in a holder identity written by
// Identity; false for any other identity (a holder of another kind, or none).
func EndpointOf(holder string) (string, bool) {
	i := strings.LastIndex(holder, identitySep)
	if i < 0 {
		return "", false
	}
	u, err := url.Parse(holder[i+len(identitySep):])
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", false
	}
	return u.String(), true
}

// EndpointURL is the URL of an endpoint listening on host:port.
func EndpointURL(host string, port int) string {
	return (&url.URL{Scheme: "https", Host: joinHostPort(host, port)}).String()
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// SetupWithManager runs the relay's batches on every server, with the manager.
func (r *Relay) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	return mgr.Add(lifecycle.OnEveryServer(r.Start))
}

// SetupWithManager serves the endpoint on every server, with the manager (only the leader
// answers).
func (s *Server) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	return mgr.Add(lifecycle.OnEveryServer(s.Start))
}
