package v1

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gantry-run/gantry/pkg/apis"
)

func TestServiceValidation(t *testing.T) {
	tests := []struct {
		name   string
		ctx    func(base *Service) context.Context
		base   func(*Service)
		mutate func(*Service)
		want   string
	}{{
		name: "valid",
	}, {
		name: "configurationName in a service",
		mutate: func(s *Service) {
			s.Spec.Traffic = []TrafficTarget{{ConfigurationName: "hello", Percent: ptr[int64](100)}}
		},
		want: "must not set the field(s): spec.traffic[0].configurationName",
	}, {
		name: "release split with tags",
		mutate: func(s *Service) {
			s.Spec.Template.Name = "hello-v2"
			s.Spec.Traffic = []TrafficTarget{
				{Tag: "current", RevisionName: "hello-v1", Percent: ptr[int64](50)},
				{Tag: "candidate", RevisionName: "hello-v2", Percent: ptr[int64](50)},
				{Tag: "latest", LatestRevision: ptr(true), Percent: ptr[int64](0)},
			}
		},
	}, {
		name: "latestRevision false without a revision",
		mutate: func(s *Service) {
			s.Spec.Traffic = []TrafficTarget{{LatestRevision: ptr(false), Percent: ptr[int64](100)}}
		},
		want: "may not be false without a revisionName: spec.traffic[0].latestRevision",
	}, {
		name:   "traffic sum",
		mutate: func(s *Service) { s.Spec.Traffic[0].Percent = ptr[int64](90) },
		want:   "traffic targets sum to 90, want 100: spec.traffic",
	}, {
		name:   "bad service name",
		mutate: func(s *Service) { s.Name = "Hello" },
		want:   "invalid value: Hello: metadata.name\na DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
	}, {
		name:   "autoscaling annotation on the service",
		mutate: func(s *Service) { s.Annotations = map[string]string{"autoscaling.knative.dev/target": "10"} },
		want:   "autoscaling annotations must be put under spec.template.metadata.annotations to take effect: metadata.annotations[autoscaling.knative.dev/target]",
	}, {
		name:   "template change keeping a user-chosen name",
		ctx:    func(base *Service) context.Context { return apis.WithinUpdate(context.Background(), base) },
		base:   func(s *Service) { s.Spec.Template.Name = "hello-v1" },
		mutate: func(s *Service) { s.Spec.Template.Name = "hello-v1"; container(s, 0).Image = "new" },
		want:   "invalid value: hello-v1: spec.template.metadata.name\nthe template changed but its name did not: a changed template needs a new revision name",
	}, {
		name:   "template change with a new name",
		ctx:    func(base *Service) context.Context { return apis.WithinUpdate(context.Background(), base) },
		base:   func(s *Service) { s.Spec.Template.Name = "hello-v1" },
		mutate: func(s *Service) { s.Spec.Template.Name = "hello-v2"; container(s, 0).Image = "new" },
	}, {
		name:   "template change without a chosen name",
		ctx:    func(base *Service) context.Context { return apis.WithinUpdate(context.Background(), base) },
		mutate: func(s *Service) { container(s, 0).Image = "new" },
	}, {
		name:   "metadata-only change keeping the name",
		ctx:    func(base *Service) context.Context { return apis.WithinUpdate(context.Background(), base) },
		base:   func(s *Service) { s.Spec.Template.Name = "hello-v1" },
		mutate: func(s *Service) { s.Spec.Template.Name = "hello-v1"; s.Labels = map[string]string{"team": "a"} },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(validService(tc.base))
			}
			got := validService(tc.mutate).Validate(ctx).Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}
