package metering

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStoreUpsertReopenNoDoubleCount(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DBPath)
	s, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	open := rec("u1", "ns", "a", "web", 250, 512, t0, time.Time{})
	ch, err := s.Observe(ctx, open, t0.Add(time.Second))
	if err != nil || !ch.Inserted || ch.Closed {
		t.Fatalf("first observation = %+v, %v; want inserted open", ch, err)
	}
	// Seen again running: nothing changes.
	if ch, err = s.Observe(ctx, open, t0.Add(2*time.Second)); err != nil || ch.Inserted || ch.Closed {
		t.Fatalf("second observation = %+v, %v; want no change", ch, err)
	}
	if err := s.Touch(ctx, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// A kill -9: the database is reopened as it was left (not closed).
	s2, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	opens, err := s2.OpenRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(opens) != 1 || opens[0].UID != "u1" || !opens[0].LastSeen.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("open records after reopen = %+v", opens)
	}
	if diff := cmp.Diff(open, opens[0].Record); diff != "" {
		t.Errorf("record after reopen (-want +got):\n%s", diff)
	}
	// The end, then a later end (a second delete event, a restart): the first one stays.
	closed := open
	closed.End = t0.Add(90 * time.Second)
	if ch, err = s2.Observe(ctx, closed, t0.Add(91*time.Second)); err != nil || ch.Inserted || !ch.Closed || !ch.LastSeen.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("closing observation = %+v, %v", ch, err)
	}
	later := closed
	later.End = t0.Add(500 * time.Second)
	if ch, err = s2.Observe(ctx, later, t0.Add(501*time.Second)); err != nil || ch.Inserted || ch.Closed || !ch.Ended {
		t.Fatalf("observation after the end = %+v, %v; want no change", ch, err)
	}
	if ok, err := s2.CloseAt(ctx, "u1", t0.Add(time.Hour)); err != nil || ok {
		t.Fatalf("CloseAt of a closed record = %v, %v; want false", ok, err)
	}
	// A pod first seen already ended is inserted closed.
	done := rec("u2", "other", "b", "", 1000, 2048, t0, t0.Add(10*time.Second))
	if ch, err = s2.Observe(ctx, done, t0.Add(time.Minute)); err != nil || !ch.Inserted || !ch.Closed {
		t.Fatalf("observation of an ended pod = %+v, %v", ch, err)
	}
	all, err := s2.Records(ctx, time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{closed, done}, all); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// Filters: the namespace, and since (an ended record before it is left out).
	if got, _ := s2.Records(ctx, time.Time{}, "other"); len(got) != 1 || got[0].UID != "u2" {
		t.Errorf("records in other = %+v", got)
	}
	if got, _ := s2.Records(ctx, t0.Add(time.Minute), ""); len(got) != 1 || got[0].UID != "u1" {
		t.Errorf("records since t0+1m = %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreRatesAndReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DBPath)
	if _, err := OpenStoreReadOnly(ctx, path); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("read-only open of nothing = %v, want ErrNoDatabase", err)
	}
	s, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Rates(ctx); err != nil || r != DefaultRates() {
		t.Fatalf("rates of a new database = %+v, %v; want the defaults", r, err)
	}
	want := Rates{VCPUHour: 1, GBHour: 2, StorageGBHour: 3, IncludedStorageGB: 4}
	if err := s.SetRates(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Observe(ctx, rec("u1", "ns", "a", "", 250, 512, t0, time.Time{}), t0); err != nil {
		t.Fatal(err)
	}
	// A reader beside the writer sees what it committed, and cannot write.
	ro, err := OpenStoreReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if r, err := ro.Rates(ctx); err != nil || r != want {
		t.Errorf("rates read back = %+v, %v; want %+v", r, err, want)
	}
	if got, err := ro.Records(ctx, time.Time{}, ""); err != nil || len(got) != 1 {
		t.Errorf("records read back = %+v, %v", got, err)
	}
	if err := ro.SetRates(ctx, DefaultRates()); err == nil {
		t.Error("a read-only store wrote")
	}
}
