package metering

import (
	"fmt"
	"slices"
	"time"
)

// Group is how a report groups records.
type Group string

// The groups of gantry usage --by.
const (
	ByService   Group = "service"
	ByNamespace Group = "namespace"
	ByProfile   Group = "profile"
)

// ParseGroup reads a --by value.
func ParseGroup(s string) (Group, error) {
	switch g := Group(s); g {
	case ByService, ByNamespace, ByProfile:
		return g, nil
	}
	return "", fmt.Errorf("%q is not one of %s, %s, %s", s, ByService, ByNamespace, ByProfile)
}

// Row is one group's usage over a report's period.
type Row struct {
	// Key names the group: namespace/Kind/name for a service, the namespace, or the profile.
	Key string `json:"key"`
	// Pods counts the records; Running those still open.
	Pods    int `json:"pods"`
	Running int `json:"running"`
	Usage
	Cost float64 `json:"cost"`
	// AlwaysOnCost is what the group's services would have cost with one pod each running
	// all the time; Saving is AlwaysOnCost less Cost.
	AlwaysOnCost float64 `json:"alwaysOnCost"`
	Saving       float64 `json:"saving"`
}

// Report is a usage report.
type Report struct {
	Since time.Time `json:"since"`
	Now   time.Time `json:"now"`
	By    Group     `json:"by"`
	Rates Rates     `json:"rates"`
	Rows  []Row     `json:"rows"`
	Total Row       `json:"total"`
}

// Billed is rec's usage within [since, now]: a pod that started in the period is billed from
// its start, rounded up, at least a minute; one that started before it only for its part
// within it, rounded up; an open record up to now.
func (r Rates) Billed(rec Record, since, now time.Time) Usage {
	end := rec.End
	if rec.Open() || end.After(now) {
		end = now
	}
	var secs int64
	if rec.Start.Before(since) {
		secs = ceilSeconds(end.Sub(since))
	} else {
		secs = BilledSeconds(rec.Start, end)
	}
	return r.For(rec.Size, secs)
}

// ServiceKey names the service rec runs for.
func ServiceKey(rec Record) string { return rec.Namespace + "/" + rec.OwnerKind + "/" + rec.OwnerName }

// Summarize prices records over [since, now] at rates, grouped by by, rows sorted by key.
//
// The always-on comparison takes each service (namespace, owner) once: one pod at the size of
// its latest record, from its first record's start (or since, if later) to now.
func Summarize(records []Record, rates Rates, since, now time.Time, by Group) Report {
	rep := Report{Since: since, Now: now, By: by, Rates: rates}
	rows := map[string]*Row{}
	type service struct {
		first, latest Record
		group         string
	}
	services := map[string]*service{}
	for _, rec := range records {
		if !rec.Open() && rec.End.Before(since) || rec.Start.After(now) {
			continue
		}
		key := groupKey(rec, by)
		row := rows[key]
		if row == nil {
			row = &Row{Key: key}
			rows[key] = row
		}
		u := rates.Billed(rec, since, now)
		row.Pods++
		if rec.Open() {
			row.Running++
		}
		row.Usage = row.Add(u)
		row.Cost += rates.Cost(u)

		sk := ServiceKey(rec)
		s := services[sk]
		if s == nil {
			s = &service{first: rec, latest: rec, group: key}
			services[sk] = s
		}
		if rec.Start.Before(s.first.Start) {
			s.first = rec
		}
		if !rec.Start.Before(s.latest.Start) {
			s.latest = rec
		}
	}
	for _, s := range services {
		from := s.first.Start
		if from.Before(since) {
			from = since
		}
		rows[s.group].AlwaysOnCost += rates.Cost(rates.For(s.latest.Size, ceilSeconds(now.Sub(from))))
	}
	rep.Total.Key = "total"
	for _, row := range rows {
		row.Saving = row.AlwaysOnCost - row.Cost
		rep.Rows = append(rep.Rows, *row)
		rep.Total.Pods += row.Pods
		rep.Total.Running += row.Running
		rep.Total.Usage = rep.Total.Add(row.Usage)
		rep.Total.Cost += row.Cost
		rep.Total.AlwaysOnCost += row.AlwaysOnCost
	}
	rep.Total.Saving = rep.Total.AlwaysOnCost - rep.Total.Cost
	slices.SortFunc(rep.Rows, func(a, b Row) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return rep
}

func groupKey(rec Record, by Group) string {
	switch by {
	case ByNamespace:
		return rec.Namespace
	case ByProfile:
		if rec.Profile == "" {
			return "(none)"
		}
		return rec.Profile
	}
	return ServiceKey(rec)
}
