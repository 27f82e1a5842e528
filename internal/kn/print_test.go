package kn

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the output")

// golden compares got with testdata/<name>.golden, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/kn -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got)\n%s", path, diff)
	}
}

func TestPrintGolden(t *testing.T) {
	p := Printer{Now: testNow, GatewayPort: 8080}
	svc, revs, rt := fixtureHello()
	services := map[string]*servingv1.Service{"hello": svc}
	tests := []struct {
		name  string
		print func(*bytes.Buffer) error
	}{
		{"service-list", func(b *bytes.Buffer) error {
			return p.ServiceList(b, []servingv1.Service{*fixtureReady(), *svc})
		}},
		{"service-list-empty", func(b *bytes.Buffer) error { return p.ServiceList(b, nil) }},
		{"service-describe", func(b *bytes.Buffer) error { return p.DescribeService(b, svc, revs) }},
		{"revision-list", func(b *bytes.Buffer) error { return p.RevisionList(b, revs, services) }},
		{"revision-describe", func(b *bytes.Buffer) error { return p.DescribeRevision(b, &revs[0], svc) }},
		{"revision-describe-failed", func(b *bytes.Buffer) error { return p.DescribeRevision(b, &revs[2], svc) }},
		{"route-list", func(b *bytes.Buffer) error { return p.RouteList(b, []servingv1.Route{*rt}) }},
		{"route-describe", func(b *bytes.Buffer) error { return p.DescribeRoute(b, rt) }},
		{"route-describe-port-80", func(b *bytes.Buffer) error { return Printer{Now: testNow, GatewayPort: 80}.DescribeRoute(b, rt) }},
		{"top", func(b *bytes.Buffer) error {
			prev, cur := fixtureMetrics(t)
			return p.Top(b, TopRows(fixturePodAutoscalers(), prev, cur))
		}},
		{"top-no-metrics", func(b *bytes.Buffer) error {
			return p.Top(b, TopRows([]pav1alpha1.PodAutoscaler{fixturePodAutoscalers()[0]}, nil, nil))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.print(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}
