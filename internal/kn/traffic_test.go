package kn

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestEditTraffic(t *testing.T) {
	latest := func(pct int64, tag string) servingv1.TrafficTarget { return latestTarget(pct, tag) }
	rev := func(name string, pct int64, tag string) servingv1.TrafficTarget {
		return revisionTarget(name, pct, tag)
	}
	tests := []struct {
		name    string
		current []servingv1.TrafficTarget
		traffic []string
		tags    []string
		untags  []string
		want    []servingv1.TrafficTarget
		wantErr string
	}{
		{
			name:    "split from the default",
			traffic: []string{"hello-00001=80,@latest=20"},
			want:    []servingv1.TrafficTarget{latest(20, ""), rev("hello-00001", 80, "")},
		},
		{
			name:    "split and tag at once",
			traffic: []string{"hello-00001=80,@latest=20"},
			tags:    []string{"hello-00001=stable"},
			want:    []servingv1.TrafficTarget{latest(20, ""), rev("hello-00001", 80, "stable")},
		},
		{
			name: "tag alone adds a 0 % target",
			tags: []string{"hello-00001=stable"},
			want: []servingv1.TrafficTarget{latest(100, ""), rev("hello-00001", 0, "stable")},
		},
		{
			name:    "by tag name",
			current: []servingv1.TrafficTarget{latest(20, ""), rev("hello-00001", 80, "stable")},
			traffic: []string{"stable=50,@latest=50"},
			want:    []servingv1.TrafficTarget{latest(50, ""), rev("hello-00001", 50, "stable")},
		},
		{
			name:    "back to latest keeps tagged targets at 0 and drops untagged ones",
			current: []servingv1.TrafficTarget{rev("hello-00002", 20, ""), rev("hello-00001", 80, "stable")},
			traffic: []string{"@latest=100"},
			want:    []servingv1.TrafficTarget{rev("hello-00001", 0, "stable"), latest(100, "")},
		},
		{
			name:    "untag drops a target left with nothing",
			current: []servingv1.TrafficTarget{latest(100, ""), rev("hello-00001", 0, "stable")},
			untags:  []string{"stable"},
			want:    []servingv1.TrafficTarget{latest(100, "")},
		},
		{
			name:    "untag then retag",
			current: []servingv1.TrafficTarget{latest(100, ""), rev("hello-00001", 0, "stable")},
			untags:  []string{"stable"},
			tags:    []string{"hello-00002=stable"},
			want:    []servingv1.TrafficTarget{latest(100, ""), rev("hello-00002", 0, "stable")},
		},
		{
			name:    "tag in use",
			current: []servingv1.TrafficTarget{latest(100, ""), rev("hello-00001", 0, "stable")},
			tags:    []string{"hello-00002=stable"},
			wantErr: "tag stable is already on hello-00001",
		},
		{
			name:    "unknown untag",
			untags:  []string{"nope"},
			wantErr: "--untag nope: no traffic target has that tag",
		},
		{
			name:    "a share that leaves others out of the sum",
			current: []servingv1.TrafficTarget{latest(100, "")},
			traffic: []string{"hello-00001=100"},
			want:    []servingv1.TrafficTarget{rev("hello-00001", 100, "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shares, err := ParseTraffic(tt.traffic)
			if err != nil {
				t.Fatal(err)
			}
			tags, err := ParseTags(tt.tags)
			if err != nil {
				t.Fatal(err)
			}
			before := append([]servingv1.TrafficTarget(nil), tt.current...)
			got, err := EditTraffic(tt.current, shares, tags, tt.untags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(before, tt.current); diff != "" {
				t.Errorf("EditTraffic changed its input (-before +after)\n%s", diff)
			}
		})
	}
}
