package resourcemetrics

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// groupVersion is the API this package serves.
var groupVersion = metricsv1beta1.SchemeGroupVersion

const prefix = "/apis/" + metricsv1beta1.GroupName + "/v1beta1"

// codecs encode the metrics types as JSON, YAML or protobuf, whichever the client accepts.
var codecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := metricsv1beta1.AddToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(s)
}()

// metricsSource is what the handler serves from.
type metricsSource interface {
	podMetrics() []metricsv1beta1.PodMetrics
	nodeMetrics(name string) (metricsv1beta1.NodeMetrics, bool)
}

// handler answers the metrics.k8s.io/v1beta1 paths: discovery, and get and list of
// PodMetrics and NodeMetrics with label and field selectors. Watches are not served.
type handler struct {
	src  metricsSource
	node string // the node's name
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.fail(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: groupVersion.Group}, r.Method))
		return
	}
	if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
		h.fail(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: groupVersion.Group}, "watch"))
		return
	}
	switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
	case "/apis":
		h.write(w, r, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{apiGroup()}})
	case "/apis/" + groupVersion.Group:
		g := apiGroup()
		h.write(w, r, &g)
	case prefix:
		h.write(w, r, apiResources())
	default:
		rest, ok := strings.CutPrefix(p, prefix+"/")
		if !ok {
			h.fail(w, r, apierrors.NewNotFound(schema.GroupResource{}, p))
			return
		}
		h.serveResource(w, r, strings.Split(rest, "/"))
	}
}

// serveResource serves nodes, nodes/<name>, pods, namespaces/<ns>/pods and
// namespaces/<ns>/pods/<name>.
func (h *handler) serveResource(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case len(parts) == 1 && parts[0] == "nodes":
		h.listNodes(w, r)
	case len(parts) == 2 && parts[0] == "nodes":
		m, ok := h.src.nodeMetrics(h.node)
		if !ok || parts[1] != h.node {
			h.fail(w, r, apierrors.NewNotFound(groupVersion.WithResource("nodes").GroupResource(), parts[1]))
			return
		}
		h.write(w, r, &m)
	case len(parts) == 1 && parts[0] == "pods":
		h.listPods(w, r, "")
	case len(parts) == 3 && parts[0] == "namespaces" && parts[2] == "pods":
		h.listPods(w, r, parts[1])
	case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "pods":
		for _, m := range h.src.podMetrics() {
			if m.Namespace == parts[1] && m.Name == parts[3] {
				h.write(w, r, &m)
				return
			}
		}
		h.fail(w, r, apierrors.NewNotFound(groupVersion.WithResource("pods").GroupResource(), parts[3]))
	default:
		h.fail(w, r, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
	}
}

func (h *handler) listPods(w http.ResponseWriter, r *http.Request, ns string) {
	ls, fs, err := selectors(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	list := &metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: groupVersion.String()}}
	for _, m := range h.src.podMetrics() {
		if ns != "" && m.Namespace != ns {
			continue
		}
		if !ls.Matches(labels.Set(m.Labels)) || !fs.Matches(fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace}) {
			continue
		}
		list.Items = append(list.Items, m)
	}
	slices.SortFunc(list.Items, func(a, b metricsv1beta1.PodMetrics) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	h.write(w, r, list)
}

func (h *handler) listNodes(w http.ResponseWriter, r *http.Request) {
	ls, fs, err := selectors(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	list := &metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: groupVersion.String()}}
	if m, ok := h.src.nodeMetrics(h.node); ok && ls.Matches(labels.Set(m.Labels)) && fs.Matches(fields.Set{"metadata.name": m.Name}) {
		list.Items = append(list.Items, m)
	}
	h.write(w, r, list)
}

// selectors are the request's labelSelector and fieldSelector; absent ones match everything.
func selectors(r *http.Request) (labels.Selector, fields.Selector, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("labelSelector: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("fieldSelector: %v", err))
	}
	return ls, fs, nil
}

func (h *handler) write(w http.ResponseWriter, r *http.Request, obj runtime.Object) {
	responsewriters.WriteObjectNegotiated(codecs, negotiation.DefaultEndpointRestrictions, groupVersion, w, r, http.StatusOK, obj, false)
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	responsewriters.ErrorNegotiated(err, codecs, groupVersion, w, r)
}

func apiGroup() metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: groupVersion.String(), Version: groupVersion.Version}
	return metav1.APIGroup{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:     groupVersion.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v,
	}
}

func apiResources() *metav1.APIResourceList {
	verbs := metav1.Verbs{"get", "list"}
	return &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: groupVersion.String(),
		APIResources: []metav1.APIResource{
			{Name: "nodes", Kind: "NodeMetrics", Namespaced: false, Verbs: verbs},
			{Name: "pods", Kind: "PodMetrics", Namespaced: true, Verbs: verbs},
		},
	}
}

// fromAggregator lets through only requests whose client certificate was issued by the
// front-proxy CA (the TLS handshake verified the chain) to one of the allowed names: the
// API server's aggregator, which authenticated and authorized the caller before proxying.
func fromAggregator(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !slices.ContainsFunc(r.TLS.VerifiedChains, func(chain []*x509.Certificate) bool {
			return len(chain) > 0 && slices.Contains(allowed, chain[0].Subject.CommonName)
		}) {
			responsewriters.ErrorNegotiated(apierrors.NewUnauthorized("the resource metrics API answers only the API server's aggregator"), codecs, groupVersion, w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
