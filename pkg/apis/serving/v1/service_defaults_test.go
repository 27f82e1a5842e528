package v1

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestServiceDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   []TrafficTarget
		want []TrafficTarget
	}{{
		name: "no traffic: all to latest",
		want: []TrafficTarget{{Percent: ptr[int64](100), LatestRevision: ptr(true)}},
	}, {
		name: "traffic kept, latestRevision filled",
		in: []TrafficTarget{
			{Tag: "current", RevisionName: "s-1", Percent: ptr[int64](50)},
			{Tag: "candidate", Percent: ptr[int64](50)},
		},
		want: []TrafficTarget{
			{Tag: "current", RevisionName: "s-1", Percent: ptr[int64](50), LatestRevision: ptr(false)},
			{Tag: "candidate", Percent: ptr[int64](50), LatestRevision: ptr(true)},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{Spec: ServiceSpec{
				ConfigurationSpec: ConfigurationSpec{Template: RevisionTemplateSpec{Spec: RevisionSpec{
					PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "i"}}},
				}}},
				RouteSpec: RouteSpec{Traffic: tc.in},
			}}
			s.SetDefaults(context.Background())
			if diff := cmp.Diff(tc.want, s.Spec.Traffic); diff != "" {
				t.Errorf("traffic (-want +got):\n%s", diff)
			}
			if got := s.Spec.Template.Spec.Containers[0].Name; got != "user-container" {
				t.Errorf("template container name = %q, want user-container", got)
			}
		})
	}
}
