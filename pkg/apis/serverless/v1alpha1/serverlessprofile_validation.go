package v1alpha1

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Quotas, as EKS's defaults for Fargate profiles.
const (
	// MaxProfiles is how many ServerlessProfiles a cluster may hold.
	MaxProfiles = 10
	// MaxSelectors is how many selectors a profile may have.
	MaxSelectors = 5
	// MaxSelectorLabels is how many label pairs a selector may have.
	MaxSelectorLabels = 5
)

// SystemNamespaces are never selected: the pod admission webhook does not see their pods, so
// that a webhook that is down can never keep the cluster's own parts from starting. A
// selector naming one of them literally is refused rather than silently ignored.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "gantry-system"}

// Validate checks the profile's name and spec, and on update that the spec did not change.
func (p *ServerlessProfile) Validate(ctx context.Context) *apis.FieldError {
	var errs *apis.FieldError
	// The name is the value of the ProfileLabel of every pod the profile selects.
	if msgs := validation.IsValidLabelValue(p.Name); p.Name != "" && len(msgs) > 0 {
		errs = errs.Also(apis.ErrInvalidValue(p.Name, "metadata.name",
			"the name is the value of the "+ProfileLabel+" label of the pods it selects: "+strings.Join(msgs, "; ")))
	}
	if base, ok := apis.GetBaseline(ctx).(*ServerlessProfile); ok && base != nil && !reflect.DeepEqual(base.Spec, p.Spec) {
		return errs.Also(apis.ErrGeneric("is immutable: create a new ServerlessProfile with the new selectors and delete this one", "spec"))
	}
	return errs.Also(p.Spec.Validate(ctx).ViaField("spec"))
}

// Validate checks the selectors; errors are relative to the spec.
func (s *ServerlessProfileSpec) Validate(context.Context) *apis.FieldError {
	var errs *apis.FieldError
	switch n := len(s.Selectors); {
	case n == 0:
		errs = errs.Also(apis.ErrMissingField("selectors"))
	case n > MaxSelectors:
		for i := MaxSelectors; i < n; i++ {
			errs = errs.Also(apis.ErrGeneric(fmt.Sprintf("a profile has at most %d selectors, this one has %d", MaxSelectors, n),
				fmt.Sprintf("selectors[%d]", i)))
		}
	}
	for i := range s.Selectors {
		errs = errs.Also(s.Selectors[i].Validate().ViaFieldIndex("selectors", i))
	}
	return errs
}

// Validate checks one selector; errors are relative to it.
func (s *Selector) Validate() *apis.FieldError {
	var errs *apis.FieldError
	switch {
	case s.Namespace == "":
		errs = errs.Also(apis.ErrMissingField("namespace"))
	case slices.Contains(SystemNamespaces, s.Namespace):
		errs = errs.Also(apis.ErrInvalidValue(s.Namespace, "namespace",
			"pods of the system namespaces ("+strings.Join(SystemNamespaces, ", ")+") are never selected"))
	default:
		if msgs := validation.IsDNS1123Label(literal(s.Namespace)); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(s.Namespace, "namespace",
				"a namespace name in which * and ? are wildcards: "+strings.Join(msgs, "; ")))
		}
	}
	if len(s.Labels) > MaxSelectorLabels {
		errs = errs.Also(apis.ErrGeneric(fmt.Sprintf("a selector has at most %d labels, this one has %d", MaxSelectorLabels, len(s.Labels)), "labels"))
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if msgs := validation.IsQualifiedName(literal(k)); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidKeyName(k, "labels",
				"a label key in which * and ? are wildcards: "+strings.Join(msgs, "; ")))
		}
		v := s.Labels[k]
		if msgs := validation.IsValidLabelValue(literal(v)); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(v, "labels["+k+"]",
				"a label value in which * and ? are wildcards: "+strings.Join(msgs, "; ")))
		}
	}
	return errs
}

// literal is pattern with each wildcard replaced by a letter: a pattern is valid when such a
// name is, so it can match names of the right syntax.
func literal(pattern string) string {
	return strings.NewReplacer("*", "x", "?", "x").Replace(pattern)
}
