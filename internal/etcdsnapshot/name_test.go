package etcdsnapshot

import (
	"strings"
	"testing"
	"time"
)

func TestFileNameRoundTrip(t *testing.T) {
	at := time.Date(2026, 7, 29, 10, 15, 42, 999, time.FixedZone("CEST", 2*3600))
	for _, name := range []string{OnDemand, Scheduled, "before-upgrade", "a", "x1-2-3"} {
		file := FileName(name, at)
		gotName, gotTime, ok := ParseFileName(file)
		if !ok || gotName != name || !gotTime.Equal(at.Truncate(time.Second)) {
			t.Errorf("ParseFileName(%q) = %q, %v, %t; want %q, %v, true", file, gotName, gotTime, ok, name, at.Truncate(time.Second))
		}
	}
	if got, want := FileName(OnDemand, at), "on-demand-20260729T081542Z.db"; got != want {
		t.Errorf("FileName = %q, want %q (UTC)", got, want)
	}
}

func TestParseFileNameRefusesOthers(t *testing.T) {
	for _, file := range []string{
		"",
		"on-demand-20260729T081542Z",      // no extension
		"on-demand-20260729T081542Z.db.x", // more after it
		"20260729T081542Z.db",             // no name
		"-20260729T081542Z.db",
		"On-Demand-20260729T081542Z.db",  // uppercase
		"on-demand-20260729T081542.db",   // no zone
		"on-demand-2026-07-29T08:15Z.db", // another layout
		".on-demand-20260729T081542Z.db.tmp123",
		"on_demand-20260729T081542Z.db",
	} {
		if name, _, ok := ParseFileName(file); ok {
			t.Errorf("ParseFileName(%q) accepted it as %q", file, name)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"on-demand", true},
		{"pre-upgrade-1", true},
		{"9", true},
		{"", false},
		{"-x", false},
		{"x-", false},
		{"Upper", false},
		{"a/b", false},
		{"a.b", false},
		{"../etc", false},
		{strings.Repeat("a", maxNameLen), true},
		{strings.Repeat("a", maxNameLen+1), false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok %t", tc.name, err, tc.ok)
		}
	}
}
