package dashboard

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/kn"
	"github.com/gantry-run/gantry/internal/metering"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Bounds of a service's detail.
const (
	maxEvents      = 20
	maxLogPods     = 4
	logLines       = 20
	logBytes       = 16 << 10
	detailTimeout  = 5 * time.Second
	maxTrafficBody = 16 << 10
)

// RevisionView is a revision of a service.
type RevisionView struct {
	Name    string `json:"name"`
	Ready   string `json:"ready"`
	Created string `json:"created"`
	Image   string `json:"image"`
	Percent int64  `json:"percent"`
	Tags    string `json:"tags,omitempty"`
}

// EventView is a recent event of a service or of one of its objects.
type EventView struct {
	Time    string `json:"time"`
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Object  string `json:"object"`
	Message string `json:"message"`
}

// PodLog is the last lines a pod's user container wrote.
type PodLog struct {
	Pod   string   `json:"pod"`
	Lines []string `json:"lines"`
	Error string   `json:"error,omitempty"`
}

// UsageView is a service's serverless usage this month.
type UsageView struct {
	Since       string  `json:"since"`
	Pods        int     `json:"pods"`
	Running     int     `json:"running"`
	VCPUSeconds float64 `json:"vcpuSeconds"`
	GBSeconds   float64 `json:"gbSeconds"`
	Cost        float64 `json:"cost"`
}

// Detail is a service's page.
type Detail struct {
	ServiceView
	RevisionList []RevisionView `json:"revisionList"`
	Events       []EventView    `json:"events"`
	Logs         []PodLog       `json:"logs"`
	// Usage is nil when no serverless pod of the service was metered this month.
	Usage *UsageView `json:"usage"`
}

// service serves /api/services/NAMESPACE/NAME (GET: the detail) and
// /api/services/NAMESPACE/NAME/traffic (PUT: a new split).
func (d *Dashboard) service(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "traffic") {
		http.Error(w, fmt.Sprintf("the dashboard has no page %q", r.URL.Path), http.StatusNotFound)
		return
	}
	ns, name := parts[0], parts[1]
	for _, v := range []string{ns, name} {
		if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
			http.Error(w, fmt.Sprintf("%q is not a namespace or service name: %s", v, strings.Join(errs, "; ")), http.StatusBadRequest)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), detailTimeout)
	defer cancel()
	if len(parts) == 3 {
		if r.Method != http.MethodPut {
			http.Error(w, "only PUT", http.StatusMethodNotAllowed)
			return
		}
		d.putTraffic(ctx, w, r, ns, name)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	detail, err := d.detail(ctx, ns, name)
	switch {
	case apierrors.IsNotFound(err):
		http.Error(w, fmt.Sprintf("no service %s/%s", ns, name), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, http.StatusOK, detail)
	}
}

func (d *Dashboard) detail(ctx context.Context, ns, name string) (*Detail, error) {
	svc := &servingv1.Service{}
	if err := d.cache.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
		return nil, err
	}
	revs := &servingv1.RevisionList{}
	if err := d.cache.List(ctx, revs, client.InNamespace(ns), client.MatchingLabels{servingv1.ServiceLabelKey: name}); err != nil {
		return nil, err
	}
	names := make([]string, len(revs.Items))
	for i := range revs.Items {
		names[i] = revs.Items[i].Name
	}
	out := &Detail{ServiceView: d.serviceView(svc, names)}
	for i := range revs.Items {
		rev := &revs.Items[i]
		v := RevisionView{Name: rev.Name, Ready: "Unknown", Created: rev.CreationTimestamp.UTC().Format(time.RFC3339)}
		if c := rev.Status.GetCondition(servingv1.RevisionConditionReady); c != nil {
			v.Ready = string(c.Status)
		}
		if len(rev.Spec.Containers) > 0 {
			v.Image = rev.Spec.Containers[0].Image
			if name, digest, ok := strings.Cut(v.Image, "@"); ok {
				v.Image = name + "@" + kn.ShortDigest(digest)
			}
		}
		var tags []string
		for _, t := range svc.Status.Traffic {
			if t.RevisionName == rev.Name {
				if t.Percent != nil {
					v.Percent += *t.Percent
				}
				if t.Tag != "" {
					tags = append(tags, t.Tag)
				}
			}
		}
		v.Tags = strings.Join(tags, ", ")
		out.RevisionList = append(out.RevisionList, v)
	}
	slices.SortFunc(out.RevisionList, func(a, b RevisionView) int { return strings.Compare(b.Name, a.Name) })
	if d.opts.Kube != nil {
		out.Events = d.events(ctx, ns, name)
		out.Logs = d.logs(ctx, ns, name)
	}
	out.Usage = d.usage(ctx, ns, name, time.Now())
	return out, nil
}

// events are the latest events of the service's objects: those named after it (the Service,
// its Configuration and Route, its revisions, their Deployments and pods).
func (d *Dashboard) events(ctx context.Context, ns, name string) []EventView {
	list, err := d.opts.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 500})
	if err != nil {
		return []EventView{{Type: "Warning", Reason: "EventsUnavailable", Message: err.Error()}}
	}
	type timed struct {
		at time.Time
		v  EventView
	}
	var evs []timed
	for i := range list.Items {
		e := &list.Items[i]
		obj := e.InvolvedObject.Name
		if obj != name && !strings.HasPrefix(obj, name+"-") {
			continue
		}
		at := cmp.Or(e.LastTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time)
		evs = append(evs, timed{at, EventView{
			Time: at.UTC().Format(time.RFC3339), Type: e.Type, Reason: e.Reason,
			Object: strings.ToLower(e.InvolvedObject.Kind) + "/" + obj, Message: e.Message,
		}})
	}
	slices.SortStableFunc(evs, func(a, b timed) int { return b.at.Compare(a.at) })
	out := make([]EventView, 0, min(len(evs), maxEvents))
	for i := range min(len(evs), maxEvents) {
		out = append(out, evs[i].v)
	}
	return out
}

// logs are the last lines of the user container of the service's newest pods.
func (d *Dashboard) logs(ctx context.Context, ns, name string) []PodLog {
	pods, err := d.opts.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.ServiceLabelKey + "=" + name})
	if err != nil {
		return []PodLog{{Error: err.Error()}}
	}
	items := pods.Items
	slices.SortFunc(items, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	var out []PodLog
	for i := range items {
		if len(out) == maxLogPods {
			break
		}
		p := &items[i]
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			continue
		}
		pl := PodLog{Pod: p.Name}
		stream, err := d.opts.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{
			Container: userContainer(p), TailLines: ptr.To[int64](logLines), LimitBytes: ptr.To[int64](logBytes),
		}).Stream(ctx)
		if err != nil {
			pl.Error = err.Error()
			out = append(out, pl)
			continue
		}
		sc := bufio.NewScanner(io.LimitReader(stream, logBytes))
		for sc.Scan() {
			pl.Lines = append(pl.Lines, sc.Text())
		}
		_ = stream.Close()
		out = append(out, pl)
	}
	return out
}

// userContainer is the pod's first container that is not the queue-proxy.
func userContainer(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name != "queue-proxy" {
			return c.Name
		}
	}
	return ""
}

// usage is the service's serverless usage since the start of the month (UTC), priced at the
// server's rates; nil without records.
func (d *Dashboard) usage(ctx context.Context, ns, name string, now time.Time) *UsageView {
	if d.opts.UsageDB == "" {
		return nil
	}
	store, err := metering.OpenStoreReadOnly(ctx, d.opts.UsageDB)
	if err != nil {
		if !errors.Is(err, metering.ErrNoDatabase) {
			d.log.Debug("opening the usage database", "err", err)
		}
		return nil
	}
	defer func() { _ = store.Close() }()
	rates, err := store.Rates(ctx)
	if err != nil {
		return nil
	}
	records, err := store.Records(ctx, monthStart(now), ns)
	if err != nil {
		return nil
	}
	return usageOf(records, rates, ns, name, now)
}

// usageOf prices the service's records since the start of now's month.
func usageOf(records []metering.Record, rates metering.Rates, ns, name string, now time.Time) *UsageView {
	since := monthStart(now)
	rep := metering.Summarize(records, rates, since, now, metering.ByService)
	key := ns + "/Service/" + name
	for _, row := range rep.Rows {
		if row.Key == key {
			return &UsageView{
				Since: since.Format(time.RFC3339), Pods: row.Pods, Running: row.Running,
				VCPUSeconds: row.VCPUSeconds, GBSeconds: row.GBSeconds, Cost: row.Cost,
			}
		}
	}
	return nil
}

func monthStart(now time.Time) time.Time {
	now = now.UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// TrafficRequest is the body of a PUT to a service's traffic: the new split, whole percents
// that sum to 100, each naming a revision of the service.
type TrafficRequest struct {
	Traffic []struct {
		RevisionName string `json:"revisionName"`
		Percent      int64  `json:"percent"`
	} `json:"traffic"`
}

// putTraffic writes a new split into the Service's traffic block (its Route follows), kept
// tags included, as `gantry service update --traffic` does. Only JSON from the page's own
// origin is taken: a form another site posts is not.
func (d *Dashboard) putTraffic(ctx context.Context, w http.ResponseWriter, r *http.Request, ns, name string) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "the body must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
		http.Error(w, fmt.Sprintf("origin %q may not change traffic", origin), http.StatusForbidden)
		return
	}
	var req TrafficRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTrafficBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf("the body is not a traffic split: %v", err), http.StatusBadRequest)
		return
	}
	svc := &servingv1.Service{}
	if err := d.cache.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
		code := http.StatusInternalServerError
		if apierrors.IsNotFound(err) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	revs := &servingv1.RevisionList{}
	if err := d.cache.List(ctx, revs, client.InNamespace(ns), client.MatchingLabels{servingv1.ServiceLabelKey: name}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	shares, err := trafficShares(req, revs.Items)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	traffic, err := kn.EditTraffic(svc.Spec.Traffic, shares, nil, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	patch := client.MergeFrom(svc.DeepCopy())
	svc.Spec.Traffic = traffic
	if err := d.cache.Patch(ctx, svc, patch); err != nil {
		code := http.StatusInternalServerError
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) {
			code = http.StatusBadRequest
		}
		http.Error(w, fmt.Sprintf("updating service %s/%s: %v", ns, name, err), code)
		return
	}
	d.log.Info("traffic changed from the dashboard", "service", ns+"/"+name, "traffic", shares)
	writeJSON(w, http.StatusOK, map[string]any{"traffic": traffic})
}

// trafficShares checks a requested split against the service's revisions.
func trafficShares(req TrafficRequest, revisions []servingv1.Revision) ([]kn.TrafficShare, error) {
	if len(req.Traffic) == 0 {
		return nil, errors.New("traffic: name at least one revision")
	}
	var sum int64
	seen := map[string]bool{}
	shares := make([]kn.TrafficShare, 0, len(req.Traffic))
	for i, t := range req.Traffic {
		field := fmt.Sprintf("traffic[%d]", i)
		if !slices.ContainsFunc(revisions, func(r servingv1.Revision) bool { return r.Name == t.RevisionName }) {
			return nil, fmt.Errorf("%s.revisionName: %q is not a revision of this service", field, t.RevisionName)
		}
		if seen[t.RevisionName] {
			return nil, fmt.Errorf("%s.revisionName: %q is named twice", field, t.RevisionName)
		}
		seen[t.RevisionName] = true
		if t.Percent < 0 || t.Percent > 100 {
			return nil, fmt.Errorf("%s.percent: %d is not from 0 to 100", field, t.Percent)
		}
		sum += t.Percent
		shares = append(shares, kn.TrafficShare{Ref: t.RevisionName, Percent: t.Percent})
	}
	if sum != 100 {
		return nil, fmt.Errorf("traffic: the percents sum to %d, want 100", sum)
	}
	return shares, nil
}
