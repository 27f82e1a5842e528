package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/kn"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// ServiceView is a service in the list.
type ServiceView struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	// Link is URL as a browser on this machine reaches it: with the gateway's port.
	Link string `json:"link,omitempty"`
	// Ready is the Ready condition's status (True, False, Unknown) and Reason its reason.
	Ready          string        `json:"ready"`
	Reason         string        `json:"reason,omitempty"`
	LatestRevision string        `json:"latestRevision"`
	Revisions      []string      `json:"revisions"`
	Traffic        []TrafficView `json:"traffic"`
}

// TrafficView is a target of a service's routing, as its status has it.
type TrafficView struct {
	Revision string `json:"revision"`
	Percent  int64  `json:"percent"`
	Tag      string `json:"tag,omitempty"`
	URL      string `json:"url,omitempty"`
	Latest   bool   `json:"latest,omitempty"`
}

// ProfileView is a serverless profile with the nodes of its pods.
type ProfileView struct {
	Name      string     `json:"name"`
	Phase     string     `json:"phase"`
	Selectors string     `json:"selectors"`
	Nodes     []NodeView `json:"nodes"`
}

// NodeView is a serverless node: the pod it runs and the size it was given.
type NodeView struct {
	Name     string `json:"name"`
	Pod      string `json:"pod"`
	Capacity string `json:"capacity"`
}

// frame is what a tick sends: the new points, and the services and profiles when they
// changed. The first frame a page gets carries every point kept.
type frame struct {
	At int64 `json:"at"`
	// Window is the history kept, in milliseconds: set on a stream's first frame only.
	Window   int64              `json:"window,omitempty"`
	Points   map[string][]Point `json:"points"`
	Services json.RawMessage    `json:"services,omitempty"`
	Profiles json.RawMessage    `json:"profiles,omitempty"`
}

// tick records one point per service and sends the frame to every page.
func (d *Dashboard) tick(ctx context.Context, now time.Time, prev map[string]*kn.MetricsSample) (map[string]*kn.MetricsSample, error) {
	if d.opts.Gatherer == nil {
		return nil, errNoGatherer
	}
	cur, err := gather(d.opts.Gatherer, now)
	if err != nil {
		return prev, err
	}
	// With no page open, only the history is kept: the services' keys, not their views.
	d.mu.Lock()
	watched := len(d.viewers) > 0
	d.mu.Unlock()
	var keys []string
	var encodedServices, encodedProfiles []byte
	if watched {
		if keys, encodedServices, encodedProfiles, err = d.state(ctx); err != nil {
			return prev, err
		}
	} else if keys, err = d.serviceKeys(ctx); err != nil {
		return prev, err
	}
	pas := &pav1alpha1.PodAutoscalerList{}
	if err := d.cache.List(ctx, pas, client.UnsafeDisableDeepCopy); err != nil {
		return prev, fmt.Errorf("listing podautoscalers: %w", err)
	}
	bySvc := map[string][]*pav1alpha1.PodAutoscaler{}
	for i := range pas.Items {
		pa := &pas.Items[i]
		if svc := pa.Labels[servingv1.ServiceLabelKey]; svc != "" {
			key := serviceKey(pa.Namespace, svc)
			bySvc[key] = append(bySvc[key], pa)
		}
	}
	f := frame{At: now.UnixMilli(), Points: map[string][]Point{}}
	live := make(map[string]bool, len(keys))

	d.mu.Lock()
	for _, key := range keys {
		live[key] = true
		p := servicePoint(now, bySvc[key], prev[key], cur[key])
		if d.history.add(key, p) {
			f.Points[key] = []Point{p}
		}
	}
	d.history.keep(live)
	if !watched {
		// Stale by the time a page opens: it gets them fresh (stream).
		d.lastServices, d.lastProfiles = nil, nil
	}
	if watched && !bytes.Equal(encodedServices, d.lastServices) {
		f.Services, d.lastServices = encodedServices, encodedServices
	}
	if watched && !bytes.Equal(encodedProfiles, d.lastProfiles) {
		f.Profiles, d.lastProfiles = encodedProfiles, encodedProfiles
	}
	if len(d.viewers) > 0 {
		msg := event("tick", f)
		for v := range d.viewers {
			select {
			case v <- msg:
			default: // a slow page misses this tick; the next ones carry on
			}
		}
	}
	d.mu.Unlock()
	return cur, nil
}

// state is what pages show besides the graphs: the services' keys, and the services and
// profiles encoded.
func (d *Dashboard) state(ctx context.Context) (keys []string, services, profiles []byte, err error) {
	views, err := d.services(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	prof, err := d.profiles(ctx)
	if err != nil {
		d.log.Debug("listing serverless profiles", "err", err)
	}
	keys = make([]string, len(views))
	for i, v := range views {
		keys[i] = serviceKey(v.Namespace, v.Name)
	}
	services, _ = json.Marshal(views)
	profiles, _ = json.Marshal(prof)
	return keys, services, profiles, nil
}

// serviceKeys are the keys of every Knative Service.
func (d *Dashboard) serviceKeys(ctx context.Context) ([]string, error) {
	list := &servingv1.ServiceList{}
	if err := d.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	keys := make([]string, len(list.Items))
	for i := range list.Items {
		keys[i] = serviceKey(list.Items[i].Namespace, list.Items[i].Name)
	}
	return keys, nil
}

// event encodes one server-sent event.
func event(name string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte("{}")
	}
	var b bytes.Buffer
	b.Grow(len(data) + len(name) + 16)
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// services lists the Knative Services, by namespace and name.
func (d *Dashboard) services(ctx context.Context) ([]ServiceView, error) {
	list := &servingv1.ServiceList{}
	if err := d.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	revs := &servingv1.RevisionList{}
	if err := d.cache.List(ctx, revs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	bySvc := map[string][]string{}
	for i := range revs.Items {
		r := &revs.Items[i]
		if svc := r.Labels[servingv1.ServiceLabelKey]; svc != "" {
			key := serviceKey(r.Namespace, svc)
			bySvc[key] = append(bySvc[key], r.Name)
		}
	}
	out := make([]ServiceView, 0, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		out = append(out, d.serviceView(svc, bySvc[serviceKey(svc.Namespace, svc.Name)]))
	}
	slices.SortFunc(out, func(a, b ServiceView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// serviceView is svc as the list shows it, with the names of its revisions.
func (d *Dashboard) serviceView(svc *servingv1.Service, revisions []string) ServiceView {
	v := ServiceView{Namespace: svc.Namespace, Name: svc.Name, Ready: "Unknown", LatestRevision: svc.Status.LatestReadyRevisionName}
	if svc.Status.URL != nil {
		v.URL = svc.Status.URL.String()
		v.Link = v.URL
		// A copy: the cache's object is shared.
		if u := *svc.Status.URL.URL(); d.opts.GatewayPort != 0 && u.Port() == "" {
			u.Host = net.JoinHostPort(u.Host, strconv.Itoa(d.opts.GatewayPort))
			v.Link = u.String()
		}
	}
	if c := svc.Status.GetCondition(servingv1.ServiceConditionReady); c != nil {
		v.Ready, v.Reason = string(c.Status), c.Reason
	}
	v.Revisions = slices.Sorted(slices.Values(revisions))
	for _, t := range svc.Status.Traffic {
		tv := TrafficView{Revision: t.RevisionName, Tag: t.Tag, Latest: t.LatestRevision != nil && *t.LatestRevision}
		if t.Percent != nil {
			tv.Percent = *t.Percent
		}
		if t.URL != nil {
			tv.URL = t.URL.String()
		}
		v.Traffic = append(v.Traffic, tv)
	}
	return v
}

// profiles lists the serverless profiles and, under each, the nodes of its pods.
func (d *Dashboard) profiles(ctx context.Context) ([]ProfileView, error) {
	list := &sv1alpha1.ServerlessProfileList{}
	if err := d.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, err
	}
	nodes := &corev1.NodeList{}
	if err := d.cache.List(ctx, nodes, client.UnsafeDisableDeepCopy, client.MatchingLabels{sv1alpha1.ComputeTypeTaintKey: sv1alpha1.ComputeTypeTaintValue}); err != nil {
		return nil, err
	}
	byProfile := map[string][]NodeView{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		p := n.Labels[sv1alpha1.ProfileLabel]
		byProfile[p] = append(byProfile[p], NodeView{Name: n.Name, Pod: n.Annotations[sv1alpha1.NodePodAnnotation], Capacity: n.Annotations[sv1alpha1.CapacityProvisionedAnnotation]})
	}
	out := make([]ProfileView, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		nodes := byProfile[p.Name]
		slices.SortFunc(nodes, func(a, b NodeView) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, ProfileView{Name: p.Name, Phase: string(p.Status.Phase), Selectors: p.Status.Selectors, Nodes: nodes})
	}
	slices.SortFunc(out, func(a, b ProfileView) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// stream sends a page every tick until it leaves: first all the history, then each tick.
func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	_, services, profiles, err := d.state(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ch := make(chan []byte, viewerBuffer)
	d.mu.Lock()
	if len(d.viewers) >= maxViewers {
		d.mu.Unlock()
		http.Error(w, fmt.Sprintf("gantry dashboard: %d pages are open already", maxViewers), http.StatusServiceUnavailable)
		return
	}
	d.lastServices, d.lastProfiles = services, profiles
	first := event("tick", frame{
		At: time.Now().UnixMilli(), Window: d.opts.Window.Milliseconds(),
		Points: d.history.snapshot(), Services: d.lastServices, Profiles: d.lastProfiles,
	})
	d.viewers[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.viewers, ch)
		d.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(first) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-ch:
			if !ok || !send(b) {
				return
			}
		}
	}
}

// closeViewers ends every page's stream (the server stops).
func (d *Dashboard) closeViewers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for v := range d.viewers {
		close(v)
		delete(d.viewers, v)
	}
}

// overview is the list of services and profiles, for a page without the stream.
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	services, err := d.services(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	profiles, err := d.profiles(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": services, "profiles": profiles})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
