package v1

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/pkg/apis"
)

func TestRouteValidation(t *testing.T) {
	tests := []struct {
		name    string
		route   string
		traffic []TrafficTarget
		want    string
	}{{
		name: "empty traffic",
	}, {
		name: "valid split",
		traffic: []TrafficTarget{
			{RevisionName: "r-1", Percent: ptr[int64](90), Tag: "old"},
			{ConfigurationName: "c", LatestRevision: ptr(true), Percent: ptr[int64](10), Tag: "new"},
		},
	}, {
		name: "sum is not 100",
		traffic: []TrafficTarget{
			{RevisionName: "r-1", Percent: ptr[int64](40)},
			{RevisionName: "r-2", Percent: ptr[int64](50)},
		},
		want: "traffic targets sum to 90, want 100: spec.traffic",
	}, {
		name: "percent out of range",
		traffic: []TrafficTarget{
			{RevisionName: "r-1", Percent: ptr[int64](100)},
			{RevisionName: "r-2", Percent: ptr[int64](120)},
		},
		want: "must be between 0 and 100: spec.traffic[1].percent",
	}, {
		name:    "both names",
		traffic: []TrafficTarget{{RevisionName: "r-1", ConfigurationName: "c", Percent: ptr[int64](100)}},
		want:    "expected exactly one, got both: spec.traffic[0].configurationName, spec.traffic[0].revisionName",
	}, {
		name:    "neither name",
		traffic: []TrafficTarget{{Percent: ptr[int64](100)}},
		want:    "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName",
	}, {
		name:    "latest with a revision name",
		traffic: []TrafficTarget{{RevisionName: "r-1", LatestRevision: ptr(true), Percent: ptr[int64](100)}},
		want:    "may not set revisionName \"r-1\" when latestRevision is true: spec.traffic[0].latestRevision",
	}, {
		name:    "not latest with a configuration name",
		traffic: []TrafficTarget{{ConfigurationName: "c", LatestRevision: ptr(false), Percent: ptr[int64](100)}},
		want:    "may not set configurationName \"c\" when latestRevision is false: spec.traffic[0].latestRevision",
	}, {
		name: "duplicate and invalid tags, url in spec",
		traffic: []TrafficTarget{
			{RevisionName: "r-1", Percent: ptr[int64](50), Tag: "a"},
			{RevisionName: "r-2", Percent: ptr[int64](50), Tag: "a", URL: apis.HTTP("x")},
			{RevisionName: "r-3", Percent: ptr[int64](0), Tag: "Bad_Tag"},
		},
		want: "invalid value: Bad_Tag: spec.traffic[2].tag\n" +
			strings.Join(validation.IsDNS1035Label("Bad_Tag"), "; ") + "\n" +
			"multiple definitions for tag \"a\": spec.traffic[0].tag, spec.traffic[1].tag\n" +
			"must not set the field(s): spec.traffic[1].url",
	}, {
		name:    "tag host too long",
		route:   strings.Repeat("r", 60),
		traffic: []TrafficTarget{{RevisionName: "r-1", Percent: ptr[int64](100), Tag: "long"}},
		want:    "invalid value: long: spec.traffic[0].tag\n\"long-" + strings.Repeat("r", 60) + "\", the tag's host label, is longer than 63 characters",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.route
			if name == "" {
				name = "r"
			}
			r := &Route{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: RouteSpec{Traffic: tc.traffic}}
			got := r.Validate(context.Background()).Error()
			// DNS label failures carry apimachinery's wording as their
			// details, which is not ours to pin: compare up to it.
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("Validate = %q, want prefix %q", got, tc.want)
			}
		})
	}
}

func TestRouteMetadataValidation(t *testing.T) {
	tests := []struct {
		name string
		meta metav1.ObjectMeta
		want string
	}{{
		name: "generateName",
		meta: metav1.ObjectMeta{GenerateName: "route-"},
	}, {
		name: "no name",
		want: "expected exactly one, got neither: metadata.generateName, metadata.name",
	}, {
		name: "name too long",
		meta: metav1.ObjectMeta{Name: strings.Repeat("a", 64)},
		want: "invalid value: " + strings.Repeat("a", 64) + ": metadata.name\n",
	}, {
		name: "name not a DNS-1035 label",
		meta: metav1.ObjectMeta{Name: "1abc"},
		want: "invalid value: 1abc: metadata.name\n",
	}, {
		name: "autoscaling annotation on the route",
		meta: metav1.ObjectMeta{Name: "r", Annotations: map[string]string{"autoscaling.knative.dev/min-scale": "1"}},
		want: "autoscaling annotations must be put under spec.template.metadata.annotations to take effect: metadata.annotations[autoscaling.knative.dev/min-scale]",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := (&Route{ObjectMeta: tc.meta}).Validate(context.Background()).Error()
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("Validate = %q, want prefix %q", got, tc.want)
			}
		})
	}
}
