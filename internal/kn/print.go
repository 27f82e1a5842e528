package kn

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Printer prints Knative objects for people, in kn's layout. Now is the time ages are
// counted to; GatewayPort, when not 0 or 80, is added to URLs without a port, so a URL
// printed is one that answers (the standalone gateway serves on 8080).
type Printer struct {
	Now         time.Time
	GatewayPort int
}

// URL is u as it answers through the gateway; "" for nil.
func (p Printer) URL(u *apis.URL) string {
	if u == nil || u.IsEmpty() {
		return ""
	}
	c := *u
	if p.GatewayPort != 0 && p.GatewayPort != 80 && c.Scheme == "http" && !strings.Contains(c.Host, ":") {
		c.Host = net.JoinHostPort(c.Host, strconv.Itoa(p.GatewayPort))
	}
	return c.String()
}

func (p Printer) age(t metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration.HumanDuration(p.Now.Sub(t.Time))
}

// ServiceList prints services as `kn service list` does.
func (p Printer) ServiceList(w io.Writer, services []servingv1.Service) error {
	if len(services) == 0 {
		_, err := fmt.Fprintln(w, "No services found.")
		return err
	}
	t := newTable(w, 3)
	t.row("NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON")
	for i := range services {
		s := &services[i]
		t.row(s.Name, p.URL(s.Status.URL), s.Status.LatestCreatedRevisionName,
			p.age(s.CreationTimestamp), conditionCount(&s.Status.Status), readyStatus(&s.Status.Status), readyReason(&s.Status.Status))
	}
	return t.flush()
}

// RevisionList prints revisions as `kn revision list` does: newest first within each
// service, with the traffic and tags each gets from its service's route (services, by name,
// may miss a revision's service).
func (p Printer) RevisionList(w io.Writer, revisions []servingv1.Revision, services map[string]*servingv1.Service) error {
	if len(revisions) == 0 {
		_, err := fmt.Fprintln(w, "No revisions found.")
		return err
	}
	revs := sortRevisions(revisions)
	t := newTable(w, 3)
	t.row("NAME", "SERVICE", "TRAFFIC", "TAGS", "GENERATION", "AGE", "CONDITIONS", "READY", "REASON")
	for _, r := range revs {
		svcName := r.Labels[servingv1.ServiceLabelKey]
		pct, tags := revisionTraffic(services[svcName], r.Name)
		traffic := ""
		if pct > 0 {
			traffic = fmt.Sprintf("%d%%", pct)
		}
		t.row(r.Name, svcName, traffic, strings.Join(tags, ","),
			r.Labels[servingv1.ConfigurationGenerationLabelKey], p.age(r.CreationTimestamp),
			conditionCount(&r.Status.Status), readyStatus(&r.Status.Status), readyReason(&r.Status.Status))
	}
	return t.flush()
}

// RouteList prints routes as `kn route list` does.
func (p Printer) RouteList(w io.Writer, routes []servingv1.Route) error {
	if len(routes) == 0 {
		_, err := fmt.Fprintln(w, "No routes found.")
		return err
	}
	t := newTable(w, 3)
	t.row("NAME", "URL", "READY")
	for i := range routes {
		r := &routes[i]
		t.row(r.Name, p.URL(r.Status.URL), readyStatus(&r.Status.Status))
	}
	return t.flush()
}

// DescribeService prints a service with its revisions (those of its traffic and its latest
// created one) and conditions, as `kn service describe` does.
func (p Printer) DescribeService(w io.Writer, svc *servingv1.Service, revisions []servingv1.Revision) error {
	b := &strings.Builder{}
	p.header(b, &svc.ObjectMeta)
	field(b, "URL", p.URL(svc.Status.URL))
	b.WriteString("\nRevisions:\n")
	byName := map[string]*servingv1.Revision{}
	for i := range revisions {
		byName[revisions[i].Name] = &revisions[i]
	}
	shown := map[string]bool{}
	traffic := svc.Status.Traffic
	if latest := svc.Status.LatestCreatedRevisionName; latest != "" && !trafficNames(traffic)[latest] {
		// The newest revision before it serves (or when it failed): shown with 0 %.
		traffic = append([]servingv1.TrafficTarget{{RevisionName: latest}}, traffic...)
	}
	for _, t := range traffic {
		line := fmt.Sprintf("  %3d%%  %s", percentOf(t), targetName(t))
		rev := byName[t.RevisionName]
		if rev != nil {
			line += fmt.Sprintf(" [%s] (%s)", rev.Labels[servingv1.ConfigurationGenerationLabelKey], p.age(rev.CreationTimestamp))
		}
		b.WriteString(line + "\n")
		if rev == nil || shown[rev.Name] {
			continue
		}
		shown[rev.Name] = true
		if rev.Status.GetCondition(servingv1.RevisionConditionReady).IsFalse() {
			fmt.Fprintf(b, "        Error:     %s\n", reasonText(rev.Status.GetCondition(servingv1.RevisionConditionReady)))
		}
		fmt.Fprintf(b, "        Image:     %s\n", imageText(rev))
		fmt.Fprintf(b, "        Replicas:  %s\n", replicasText(rev))
	}
	p.conditions(b, svc.Status.Conditions)
	_, err := io.WriteString(w, b.String())
	return err
}

// DescribeRevision prints one revision as `kn revision describe` does.
func (p Printer) DescribeRevision(w io.Writer, rev *servingv1.Revision, svc *servingv1.Service) error {
	b := &strings.Builder{}
	p.header(b, &rev.ObjectMeta)
	field(b, "Image", imageText(rev))
	field(b, "Replicas", replicasText(rev))
	if len(rev.Spec.Containers) > 0 {
		c := rev.Spec.Containers[0]
		env := make([]string, 0, len(c.Env))
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		optionalField(b, "Env", strings.Join(env, ", "))
		if len(c.Ports) > 0 {
			field(b, "Port", strconv.Itoa(int(c.Ports[0].ContainerPort)))
		}
	}
	optionalField(b, "Scale", scaleText(rev.Annotations))
	if cc := rev.Spec.ContainerConcurrency; cc != nil && *cc > 0 {
		field(b, "Concurrency", fmt.Sprintf("limit %d", *cc))
	}
	field(b, "Service", rev.Labels[servingv1.ServiceLabelKey])
	if pct, tags := revisionTraffic(svc, rev.Name); pct > 0 || len(tags) > 0 {
		t := fmt.Sprintf("%d%%", pct)
		if len(tags) > 0 {
			t += " #" + strings.Join(tags, " #")
		}
		field(b, "Traffic", t)
	}
	p.conditions(b, rev.Status.Conditions)
	_, err := io.WriteString(w, b.String())
	return err
}

// DescribeRoute prints one route as `kn route describe` does.
func (p Printer) DescribeRoute(w io.Writer, rt *servingv1.Route) error {
	b := &strings.Builder{}
	p.header(b, &rt.ObjectMeta)
	field(b, "URL", p.URL(rt.Status.URL))
	field(b, "Service", rt.Labels[servingv1.ServiceLabelKey])
	b.WriteString("\nTraffic Targets:\n")
	for _, t := range rt.Status.Traffic {
		fmt.Fprintf(b, "  %3d%%  %s\n", percentOf(t), targetName(t))
		if t.URL != nil {
			fmt.Fprintf(b, "        URL:  %s\n", p.URL(t.URL))
		}
	}
	p.conditions(b, rt.Status.Conditions)
	_, err := io.WriteString(w, b.String())
	return err
}

func (p Printer) header(b *strings.Builder, m *metav1.ObjectMeta) {
	field(b, "Name", m.Name)
	field(b, "Namespace", m.Namespace)
	field(b, "Age", p.age(m.CreationTimestamp))
}

// targetName is "@latest (rev)" or "rev", and " #tag", for a status traffic target.
func targetName(t servingv1.TrafficTarget) string {
	name := t.RevisionName
	if isLatest(t) {
		name = fmt.Sprintf("@latest (%s)", t.RevisionName)
	}
	if t.Tag != "" {
		name += " #" + t.Tag
	}
	return name
}

// conditions prints the conditions table: Ready first, then the others by type.
func (p Printer) conditions(b *strings.Builder, conds apis.Conditions) {
	b.WriteString("\nConditions:\n")
	sorted := append(apis.Conditions(nil), conds...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if (sorted[i].Type == apis.ConditionReady) != (sorted[j].Type == apis.ConditionReady) {
			return sorted[i].Type == apis.ConditionReady
		}
		return sorted[i].Type < sorted[j].Type
	})
	t := newTable(b, 2)
	t.row("  OK TYPE", "AGE", "REASON")
	for _, c := range sorted {
		t.row("  "+conditionSymbol(c)+" "+string(c.Type), p.age(c.LastTransitionTime), c.Reason)
	}
	_ = t.flush()
}

// table is a tabwriter for kn's column layout that drops the spaces an empty last column
// leaves at the end of a line.
type table struct {
	out io.Writer
	buf strings.Builder
	tw  *tabwriter.Writer
}

func newTable(out io.Writer, padding int) *table {
	t := &table{out: out}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 4, padding, ' ', 0)
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(t.buf.String()) {
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}

// optionalField is a field shown only with a value.
func optionalField(b *strings.Builder, name, value string) {
	if value != "" {
		field(b, name, value)
	}
}

func field(b *strings.Builder, name, value string) {
	fmt.Fprintf(b, "%-14s%s\n", name+":", value)
}

// conditionSymbol is kn's: ++ True, ?? Unknown, !! False, and W or I for a False
// condition of warning or info severity.
func conditionSymbol(c apis.Condition) string {
	switch c.Status {
	case corev1.ConditionTrue:
		return "++"
	case corev1.ConditionFalse:
		switch c.Severity {
		case apis.ConditionSeverityWarning:
			return " W"
		case apis.ConditionSeverityInfo:
			return " I"
		}
		return "!!"
	}
	return "??"
}

// conditionCount is "N OK / M": conditions True of all.
func conditionCount(s *apis.Status) string {
	ok := 0
	for _, c := range s.Conditions {
		if c.Status == corev1.ConditionTrue {
			ok++
		}
	}
	return fmt.Sprintf("%d OK / %d", ok, len(s.Conditions))
}

func readyStatus(s *apis.Status) string {
	if c := s.GetCondition(apis.ConditionReady); c != nil {
		return string(c.Status)
	}
	return "Unknown"
}

func readyReason(s *apis.Status) string {
	if conditionIsTrue(s, apis.ConditionReady) {
		return ""
	}
	return s.GetCondition(apis.ConditionReady).GetReason()
}

// imageText is the revision's image, with the digest it was pinned to.
func imageText(rev *servingv1.Revision) string {
	if len(rev.Spec.Containers) == 0 {
		return ""
	}
	img := rev.Spec.Containers[0].Image
	if repo, digest, ok := strings.Cut(img, "@"); ok {
		return repo + "@" + ShortDigest(digest)
	}
	if d := imageDigest(rev); d != "" {
		return fmt.Sprintf("%s (pinned to %s)", img, d)
	}
	return img
}

// replicasText is "ready/desired" from the revision's status.
func replicasText(rev *servingv1.Revision) string {
	n := func(p *int32) string {
		if p == nil {
			return "0"
		}
		return strconv.Itoa(int(*p))
	}
	return n(rev.Status.ActualReplicas) + "/" + n(rev.Status.DesiredReplicas)
}

// scaleText is the min and max scale a revision's annotations set.
func scaleText(ann map[string]string) string {
	lo, hi := ann[autoscaling.MinScaleAnnotationKey], ann[autoscaling.MaxScaleAnnotationKey]
	if lo == "" && hi == "" {
		return ""
	}
	if lo == "" {
		lo = "0"
	}
	if hi == "" || hi == "0" {
		hi = "∞"
	}
	return lo + " ... " + hi
}

// revisionTraffic is the percent of svc's traffic that goes to rev and the tags it has.
func revisionTraffic(svc *servingv1.Service, rev string) (int64, []string) {
	if svc == nil {
		return 0, nil
	}
	var pct int64
	var tags []string
	for _, t := range svc.Status.Traffic {
		if t.RevisionName != rev {
			continue
		}
		pct += percentOf(t)
		if t.Tag != "" {
			tags = append(tags, t.Tag)
		}
	}
	return pct, tags
}

func trafficNames(traffic []servingv1.TrafficTarget) map[string]bool {
	m := map[string]bool{}
	for _, t := range traffic {
		m[t.RevisionName] = true
	}
	return m
}

// sortRevisions orders revisions by service, then newest generation first.
func sortRevisions(revisions []servingv1.Revision) []*servingv1.Revision {
	out := make([]*servingv1.Revision, len(revisions))
	for i := range revisions {
		out[i] = &revisions[i]
	}
	gen := func(r *servingv1.Revision) int {
		n, _ := strconv.Atoi(r.Labels[servingv1.ConfigurationGenerationLabelKey])
		return n
	}
	sort.SliceStable(out, func(i, j int) bool {
		si, sj := out[i].Labels[servingv1.ServiceLabelKey], out[j].Labels[servingv1.ServiceLabelKey]
		if si != sj {
			return si < sj
		}
		if gen(out[i]) != gen(out[j]) {
			return gen(out[i]) > gen(out[j])
		}
		return out[i].Name > out[j].Name
	})
	return out
}
