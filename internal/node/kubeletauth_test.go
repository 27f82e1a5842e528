package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestAccessFor(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         kubeletAccess
	}{
		{"POST", "/exec/ns/pod/c", kubeletAccess{"create", []string{"proxy"}}},
		// A WebSocket exec is a GET: it still needs create.
		{"GET", "/exec/ns/pod/c", kubeletAccess{"create", []string{"proxy"}}},
		{"GET", "/attach/ns/pod/c", kubeletAccess{"create", []string{"proxy"}}},
		{"GET", "/portForward/ns/pod", kubeletAccess{"create", []string{"proxy"}}},
		{"POST", "/run/ns/pod/c", kubeletAccess{"create", []string{"proxy"}}},
		{"GET", "/containerLogs/ns/pod/c", kubeletAccess{"get", []string{"proxy"}}},
		{"GET", "/logs/messages", kubeletAccess{"get", []string{"log"}}},
		{"GET", "/stats/summary", kubeletAccess{"get", []string{"stats"}}},
		{"GET", "/metrics/cadvisor", kubeletAccess{"get", []string{"metrics"}}},
		{"GET", "/metrics", kubeletAccess{"get", []string{"metrics"}}},
		{"POST", "/checkpoint/ns/pod/c", kubeletAccess{"create", []string{"checkpoint"}}},
		{"GET", "/pods", kubeletAccess{"get", []string{"pods", "proxy"}}},
		{"GET", "/runningpods/", kubeletAccess{"get", []string{"pods", "proxy"}}},
		{"GET", "/healthz", kubeletAccess{"get", []string{"healthz", "proxy"}}},
		{"GET", "/configz", kubeletAccess{"get", []string{"configz", "proxy"}}},
		{"GET", "/flagz", kubeletAccess{"get", []string{"configz"}}},
		{"GET", "/statusz", kubeletAccess{"get", []string{"statusz"}}},
		{"DELETE", "/whatever", kubeletAccess{"delete", []string{"proxy"}}},
		// A prefix is a path segment, not a string prefix.
		{"GET", "/statsfoo", kubeletAccess{"get", []string{"proxy"}}},
		{"GET", "/executor", kubeletAccess{"get", []string{"proxy"}}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			got := accessFor(httptest.NewRequest(tc.method, tc.path, nil))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("accessFor (-want +got):\n%s", diff)
			}
		})
	}
}

// reviewsAllowing is a clientset whose SubjectAccessReviews allow what allow says; it counts
// the reviews asked.
func reviewsAllowing(allow func(authorizationv1.SubjectAccessReviewSpec) bool) (*fake.Clientset, *int) {
	cs := fake.NewClientset()
	asked := new(int)
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		*asked++
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		sar.Status.Allowed = allow(sar.Spec)
		return true, sar, nil
	})
	return cs, asked
}

func TestAuthorizeAsksTheAPIServerAndCaches(t *testing.T) {
	var last authorizationv1.SubjectAccessReviewSpec
	cs, asked := reviewsAllowing(func(s authorizationv1.SubjectAccessReviewSpec) bool {
		last = s
		return s.User == "operator" && s.ResourceAttributes.Subresource == "proxy"
	})
	clk := clocktesting.NewFakeClock(time.Now())
	n := &Node{log: slog.New(slog.DiscardHandler)}
	h := n.authorize(newAccessReviewer(cs, "gantry", clk), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ran"))
	}))
	do := func(user string, groups ...string) int {
		r := httptest.NewRequest(http.MethodPost, "/exec/ns/pod/c?command=id", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: user, Organization: groups}}}}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := do("tenant", "team-a"); code != http.StatusForbidden {
		t.Errorf("a caller without nodes/proxy: %d, want 403", code)
	}
	want := authorizationv1.SubjectAccessReviewSpec{User: "tenant", Groups: []string{"team-a", "system:authenticated"}, ResourceAttributes: &authorizationv1.ResourceAttributes{
		Verb: "create", Version: "v1", Resource: "nodes", Subresource: "proxy", Name: "gantry"}}
	if diff := cmp.Diff(want, last); diff != "" {
		t.Errorf("review asked (-want +got):\n%s", diff)
	}
	if code := do("operator"); code != http.StatusOK {
		t.Errorf("a caller with nodes/proxy: %d, want 200", code)
	}
	// Answers are reused for a while, then asked again.
	before := *asked
	do("operator")
	do("tenant", "team-a")
	if *asked != before {
		t.Errorf("%d reviews asked again within the cache's time", *asked-before)
	}
	clk.Step(accessAllowedTTL + time.Second)
	do("operator")
	do("tenant", "team-a")
	if *asked != before+2 {
		t.Errorf("%d reviews asked after the cache's time, want 2", *asked-before)
	}

	// No certificate: no caller.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("no client certificate: %d, want 401", w.Code)
	}
}

func TestAccessReviewerTriesEachSubresource(t *testing.T) {
	cs, _ := reviewsAllowing(func(s authorizationv1.SubjectAccessReviewSpec) bool {
		return s.ResourceAttributes.Subresource == "proxy"
	})
	r := newAccessReviewer(cs, "gantry", clocktesting.NewFakeClock(time.Now()))
	ok, err := r.allowed(context.Background(), caller{User: "u"}, kubeletAccess{"get", []string{"healthz", "proxy"}})
	if err != nil || !ok {
		t.Errorf("healthz, or else proxy: allowed = %v, %v; want true", ok, err)
	}
}
