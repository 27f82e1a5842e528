package kn

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    KeyValues
		wantErr string
	}{
		{name: "none", want: KeyValues{}},
		{name: "set and remove", in: []string{"A=1", "B=x=y", "C-"},
			want: KeyValues{Set: []KeyValue{{"A", "1"}, {"B", "x=y"}}, Remove: []string{"C"}}},
		{name: "empty value", in: []string{"A="}, want: KeyValues{Set: []KeyValue{{"A", ""}}}},
		{name: "a value ending in a dash is set", in: []string{"A=b-"}, want: KeyValues{Set: []KeyValue{{"A", "b-"}}}},
		{name: "last value wins", in: []string{"A=1", "B=2", "A=3"}, want: KeyValues{Set: []KeyValue{{"A", "3"}, {"B", "2"}}}},
		{name: "no equals", in: []string{"A"}, wantErr: `--env "A": want KEY=VALUE or KEY-`},
		{name: "no key", in: []string{"=1"}, wantErr: `--env "=1": want KEY=VALUE`},
		{name: "lone dash", in: []string{"-"}, wantErr: `--env "-"`},
		{name: "set and removed", in: []string{"A=1", "A-"}, wantErr: "--env: A is both set and removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyValues("env", tt.in)
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
		})
	}
}

func TestParseTraffic(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []TrafficShare
		wantErr string
	}{
		{name: "none"},
		{name: "commas", in: []string{"hello-00001=80,@latest=20"},
			want: []TrafficShare{{"hello-00001", 80}, {"@latest", 20}}},
		{name: "repeated flag and percent sign", in: []string{"stable=50%", "hello-00002=50"},
			want: []TrafficShare{{"stable", 50}, {"hello-00002", 50}}},
		{name: "all to one", in: []string{"@latest=100"}, want: []TrafficShare{{"@latest", 100}}},
		{name: "sum 90", in: []string{"a=50,b=40"}, wantErr: "--traffic: the percents sum to 90, want 100"},
		{name: "sum 110", in: []string{"a=60", "b=50"}, wantErr: "sum to 110"},
		{name: "not a number", in: []string{"a=half"}, wantErr: `--traffic "a=half": the percent must be a whole number from 0 to 100`},
		{name: "negative", in: []string{"a=-10,b=110"}, wantErr: "from 0 to 100"},
		{name: "no percent", in: []string{"a"}, wantErr: `--traffic "a": want REVISION=PERCENT`},
		{name: "named twice", in: []string{"a=50,a=50"}, wantErr: "--traffic: a is named twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTraffic(tt.in)
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
		})
	}
}

func TestParseTags(t *testing.T) {
	got, err := ParseTags([]string{"hello-00001=stable,@latest=current", "hello-00002=canary"})
	if err != nil {
		t.Fatal(err)
	}
	want := []TagAssignment{{"hello-00001", "stable"}, {"@latest", "current"}, {"hello-00002", "canary"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	for _, bad := range [][]string{{"stable"}, {"=x"}, {"a="}, {"a=x,b=x"}} {
		if _, err := ParseTags(bad); err == nil {
			t.Errorf("ParseTags(%q) = nil error, want one", bad)
		}
	}
}
