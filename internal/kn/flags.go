package kn

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyValues are the changes one repeatable K=V flag asks for (--env, --annotation): values to
// set, in the order given, and keys to remove ("K-", as kn spells a removal).
type KeyValues struct {
	Set    []KeyValue
	Remove []string
}

// KeyValue is one key and its value.
type KeyValue struct{ Key, Value string }

// ParseKeyValues parses the values of flag (its name is quoted in errors): each is K=V or K-.
// A key set twice keeps its last value.
func ParseKeyValues(flag string, values []string) (KeyValues, error) {
	var kv KeyValues
	index := map[string]int{}
	for _, v := range values {
		if k, ok := strings.CutSuffix(v, "-"); ok && !strings.Contains(v, "=") {
			if k == "" {
				return KeyValues{}, fmt.Errorf("--%s %q: want KEY=VALUE or KEY- (to remove KEY)", flag, v)
			}
			kv.Remove = append(kv.Remove, k)
			continue
		}
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return KeyValues{}, fmt.Errorf("--%s %q: want KEY=VALUE or KEY- (to remove KEY)", flag, v)
		}
		if i, seen := index[k]; seen {
			kv.Set[i].Value = val
			continue
		}
		index[k] = len(kv.Set)
		kv.Set = append(kv.Set, KeyValue{Key: k, Value: val})
	}
	for _, r := range kv.Remove {
		if _, ok := index[r]; ok {
			return KeyValues{}, fmt.Errorf("--%s: %s is both set and removed", flag, r)
		}
	}
	return kv, nil
}

// Empty reports whether kv changes nothing.
func (kv KeyValues) Empty() bool { return len(kv.Set) == 0 && len(kv.Remove) == 0 }

// LatestRef names the latest ready revision in --traffic and --tag, as in kn.
const LatestRef = "@latest"

// TrafficShare is one REF=PERCENT of --traffic: REF is a revision name, a tag or @latest.
type TrafficShare struct {
	Ref     string
	Percent int64
}

// ParseTraffic parses --traffic values (each REF=PERCENT, or several joined by commas). The
// shares must name each REF once and sum to 100.
func ParseTraffic(values []string) ([]TrafficShare, error) {
	var shares []TrafficShare
	seen := map[string]bool{}
	var sum int64
	for _, v := range splitCommas(values) {
		ref, pct, ok := strings.Cut(v, "=")
		if !ok || ref == "" || pct == "" {
			return nil, fmt.Errorf("--traffic %q: want REVISION=PERCENT, TAG=PERCENT or @latest=PERCENT", v)
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(pct, "%"), 10, 64)
		if err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("--traffic %q: the percent must be a whole number from 0 to 100", v)
		}
		if seen[ref] {
			return nil, fmt.Errorf("--traffic: %s is named twice", ref)
		}
		seen[ref] = true
		sum += n
		shares = append(shares, TrafficShare{Ref: ref, Percent: n})
	}
	if len(shares) > 0 && sum != 100 {
		return nil, fmt.Errorf("--traffic: the percents sum to %d, want 100", sum)
	}
	return shares, nil
}

// TagAssignment is one REF=TAG of --tag: REF is a revision name or @latest.
type TagAssignment struct {
	Ref string
	Tag string
}

// ParseTags parses --tag values (each REF=TAG, or several joined by commas). A tag names one
// target only.
func ParseTags(values []string) ([]TagAssignment, error) {
	var tags []TagAssignment
	seen := map[string]bool{}
	for _, v := range splitCommas(values) {
		ref, tag, ok := strings.Cut(v, "=")
		if !ok || ref == "" || tag == "" {
			return nil, fmt.Errorf("--tag %q: want REVISION=TAG or @latest=TAG", v)
		}
		if seen[tag] {
			return nil, fmt.Errorf("--tag: tag %s is given twice", tag)
		}
		seen[tag] = true
		tags = append(tags, TagAssignment{Ref: ref, Tag: tag})
	}
	return tags, nil
}

// splitCommas splits every value at its commas and drops empty parts.
func splitCommas(values []string) []string {
	var out []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
