// Package profile decides which ServerlessProfile selects a pod, as EKS matches Fargate
// profiles: a pod matches a selector when its namespace matches and every label of the
// selector is on the pod (`*` and `?` wildcards in namespaces, label keys and values); it
// matches a profile when it matches any selector; among several matching profiles the first
// by name wins; a pod naming its profile with the ProfileLabel gets that one and must match
// it. It is pure: the admission webhook feeds it the profiles and the pod.
package profile

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Pod is what matching reads of a pod: its namespace and labels.
type Pod struct {
	Namespace string
	Labels    map[string]string
}

// Select returns the profile that selects pod, or nil when none does. Only profiles that
// select new pods (valid and not being deleted: ServerlessProfile.Selects) count. A pod whose ProfileLabel names a
// profile gets that profile, or an error saying why not: no such profile, or the pod does
// not match it.
func Select(profiles []*sv1alpha1.ServerlessProfile, pod Pod) (*sv1alpha1.ServerlessProfile, error) {
	active := make([]*sv1alpha1.ServerlessProfile, 0, len(profiles))
	for _, p := range profiles {
		if p.Selects() {
			active = append(active, p)
		}
	}
	sort.Slice(active, func(i, j int) bool { return active[i].Name < active[j].Name })
	if name, ok := pod.Labels[sv1alpha1.ProfileLabel]; ok {
		i := slices.IndexFunc(active, func(p *sv1alpha1.ServerlessProfile) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("metadata.labels[%s]: no ServerlessProfile called %q selects pods (there is none, or it is being deleted or invalid)", sv1alpha1.ProfileLabel, name)
		}
		if !Matches(active[i], pod) {
			return nil, fmt.Errorf("metadata.labels[%s]: the pod does not match ServerlessProfile %q: %s",
				sv1alpha1.ProfileLabel, name, describe(active[i]))
		}
		return active[i], nil
	}
	for _, p := range active {
		if Matches(p, pod) {
			return p, nil
		}
	}
	return nil, nil
}

// Matches reports whether pod matches any selector of p.
func Matches(p *sv1alpha1.ServerlessProfile, pod Pod) bool {
	for i := range p.Spec.Selectors {
		if MatchesSelector(&p.Spec.Selectors[i], pod) {
			return true
		}
	}
	return false
}

// MatchesSelector reports whether pod's namespace matches s's and every label pattern of s
// is matched by one of pod's labels.
func MatchesSelector(s *sv1alpha1.Selector, pod Pod) bool {
	if !Glob(s.Namespace, pod.Namespace) {
		return false
	}
	for kp, vp := range s.Labels {
		found := false
		for k, v := range pod.Labels {
			if Glob(kp, k) && Glob(vp, v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Glob reports whether name matches pattern, where `*` matches any run of characters (none
// included) and `?` exactly one; every other character matches itself.
func Glob(pattern, name string) bool {
	// The classic two-pointer walk: on a mismatch after a `*`, let the star take one more
	// character and retry. Linear in practice, never exponential.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// describe renders p's selectors for a refusal: "namespace dev labels app=web; namespace qa".
func describe(p *sv1alpha1.ServerlessProfile) string {
	parts := make([]string, 0, len(p.Spec.Selectors))
	for _, s := range p.Spec.Selectors {
		part := "namespace " + s.Namespace
		if len(s.Labels) > 0 {
			kv := make([]string, 0, len(s.Labels))
			for k, v := range s.Labels {
				kv = append(kv, k+"="+v)
			}
			slices.Sort(kv)
			part += " with labels " + strings.Join(kv, ",")
		}
		parts = append(parts, part)
	}
	return "it selects " + strings.Join(parts, "; ")
}
