package kn

import (
	"fmt"
	"slices"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// EditTraffic returns the traffic block that --untag, --tag and --traffic (applied in that
// order, as kn does) make of current. An empty current is Knative's default: all traffic to
// the latest ready revision. With --traffic, every target it does not name gets 0 percent,
// and a target left with neither percent nor tag is dropped.
func EditTraffic(current []servingv1.TrafficTarget, shares []TrafficShare, tags []TagAssignment, untags []string) ([]servingv1.TrafficTarget, error) {
	targets := make([]servingv1.TrafficTarget, 0, len(current)+len(tags)+len(shares))
	for _, t := range current {
		targets = append(targets, *t.DeepCopy())
	}
	if len(targets) == 0 {
		targets = append(targets, latestTarget(100, ""))
	}
	for _, tag := range untags {
		i := slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return t.Tag == tag })
		if i < 0 {
			return nil, fmt.Errorf("--untag %s: no traffic target has that tag", tag)
		}
		targets[i].Tag = ""
		targets[i].URL = nil
	}
	for _, a := range tags {
		if i := slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return t.Tag == a.Tag }); i >= 0 {
			return nil, fmt.Errorf("--tag %s=%s: tag %s is already on %s (remove it first with --untag %s)", a.Ref, a.Tag, a.Tag, refOf(targets[i]), a.Tag)
		}
		if i := slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return t.Tag == "" && matchesRef(t, a.Ref) }); i >= 0 {
			targets[i].Tag = a.Tag
			continue
		}
		if a.Ref == LatestRef {
			targets = append(targets, latestTarget(0, a.Tag))
		} else {
			targets = append(targets, revisionTarget(a.Ref, 0, a.Tag))
		}
	}
	if len(shares) > 0 {
		set := make([]bool, len(targets))
		for _, s := range shares {
			i := findShareTarget(targets, s.Ref)
			if i < 0 {
				if s.Ref == LatestRef {
					targets = append(targets, latestTarget(0, ""))
				} else {
					targets = append(targets, revisionTarget(s.Ref, 0, ""))
				}
				set = append(set, false)
				i = len(targets) - 1
			}
			if set[i] {
				return nil, fmt.Errorf("--traffic: %s and another reference name the same target", s.Ref)
			}
			set[i] = true
			targets[i].Percent = ptr(s.Percent)
		}
		for i := range targets {
			if !set[i] {
				targets[i].Percent = nil
			}
		}
	}
	out := targets[:0]
	for _, t := range targets {
		if t.Tag == "" && percentOf(t) == 0 {
			continue
		}
		if t.Percent != nil && *t.Percent == 0 {
			t.Percent = nil
		}
		out = append(out, t)
	}
	var sum int64
	for _, t := range out {
		sum += percentOf(t)
	}
	if sum != 100 {
		return nil, fmt.Errorf("the traffic would sum to %d percent, want 100 (give --traffic for every target)", sum)
	}
	return out, nil
}

// findShareTarget finds the target a --traffic REF means: the target with that tag, else the
// untagged target of that revision (or of @latest), else any target of it.
func findShareTarget(targets []servingv1.TrafficTarget, ref string) int {
	if i := slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return t.Tag == ref }); i >= 0 {
		return i
	}
	if i := slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return t.Tag == "" && matchesRef(t, ref) }); i >= 0 {
		return i
	}
	return slices.IndexFunc(targets, func(t servingv1.TrafficTarget) bool { return matchesRef(t, ref) })
}

func matchesRef(t servingv1.TrafficTarget, ref string) bool {
	if ref == LatestRef {
		return isLatest(t)
	}
	return !isLatest(t) && t.RevisionName == ref
}

func isLatest(t servingv1.TrafficTarget) bool {
	return t.LatestRevision != nil && *t.LatestRevision
}

func refOf(t servingv1.TrafficTarget) string {
	if isLatest(t) {
		return LatestRef
	}
	return t.RevisionName
}

func percentOf(t servingv1.TrafficTarget) int64 {
	if t.Percent == nil {
		return 0
	}
	return *t.Percent
}

func latestTarget(percent int64, tag string) servingv1.TrafficTarget {
	t := servingv1.TrafficTarget{LatestRevision: ptr(true), Tag: tag}
	if percent > 0 {
		t.Percent = ptr(percent)
	}
	return t
}

func revisionTarget(rev string, percent int64, tag string) servingv1.TrafficTarget {
	t := servingv1.TrafficTarget{RevisionName: rev, LatestRevision: ptr(false), Tag: tag}
	if percent > 0 {
		t.Percent = ptr(percent)
	}
	return t
}

func ptr[T any](v T) *T { return &v }
