package v1

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/pkg/apis"
)

type inServiceKey struct{}

// withinService tells traffic validation it checks a Service's spec, where
// targets name no Configuration.
func withinService(ctx context.Context) context.Context {
	return context.WithValue(ctx, inServiceKey{}, true)
}

func isInService(ctx context.Context) bool {
	b, _ := ctx.Value(inServiceKey{}).(bool)
	return b
}

// Validate checks a Route's metadata and traffic.
func (r *Route) Validate(ctx context.Context) *apis.FieldError {
	errs := validateTopLevelMetadata(&r.ObjectMeta)
	errs = errs.Also(r.Spec.Validate(ctx).ViaField("spec"))
	return errs.Also(validateTagHosts(r.Name, r.Spec.Traffic).ViaField("spec"))
}

// Validate checks every traffic target, that tags are unique, and that the
// percents sum to 100. An empty list is valid. Errors are relative to the spec.
func (rs *RouteSpec) Validate(ctx context.Context) *apis.FieldError {
	if len(rs.Traffic) == 0 {
		return nil
	}
	var errs *apis.FieldError
	var sum int64
	tags := map[string]int{}
	for i := range rs.Traffic {
		tt := &rs.Traffic[i]
		errs = errs.Also(tt.Validate(ctx).ViaFieldIndex("traffic", i))
		if tt.Percent != nil && *tt.Percent >= 0 && *tt.Percent <= 100 {
			sum += *tt.Percent
		}
		if tt.Tag == "" {
			continue
		}
		if j, dup := tags[tt.Tag]; dup {
			errs = errs.Also(apis.ErrGeneric(fmt.Sprintf("multiple definitions for tag %q", tt.Tag),
				fmt.Sprintf("traffic[%d].tag", j), fmt.Sprintf("traffic[%d].tag", i)))
		} else {
			tags[tt.Tag] = i
		}
	}
	if sum != 100 {
		errs = errs.Also(apis.ErrGeneric(fmt.Sprintf("traffic targets sum to %d, want 100", sum), "traffic"))
	}
	return errs
}

// Validate checks one target; errors are relative to it.
func (tt *TrafficTarget) Validate(ctx context.Context) *apis.FieldError {
	var errs *apis.FieldError
	inService := isInService(ctx)
	switch {
	case tt.RevisionName != "" && tt.ConfigurationName != "":
		errs = errs.Also(apis.ErrMultipleOneOf("revisionName", "configurationName"))
	case inService && tt.ConfigurationName != "":
		errs = errs.Also(apis.ErrDisallowedFields("configurationName"))
	case !inService && tt.RevisionName == "" && tt.ConfigurationName == "":
		errs = errs.Also(apis.ErrMissingOneOf("revisionName", "configurationName"))
	}
	if tt.RevisionName != "" {
		if msgs := validation.IsDNS1035Label(tt.RevisionName); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(tt.RevisionName, "revisionName", strings.Join(msgs, "; ")))
		}
	}
	if lr := tt.LatestRevision; lr != nil {
		switch {
		case *lr && tt.RevisionName != "":
			errs = errs.Also(apis.ErrGeneric(
				fmt.Sprintf("may not set revisionName %q when latestRevision is true", tt.RevisionName), "latestRevision"))
		case !*lr && tt.ConfigurationName != "":
			errs = errs.Also(apis.ErrGeneric(
				fmt.Sprintf("may not set configurationName %q when latestRevision is false", tt.ConfigurationName), "latestRevision"))
		case !*lr && tt.RevisionName == "":
			errs = errs.Also(apis.ErrGeneric("may not be false without a revisionName", "latestRevision"))
		}
	}
	if p := tt.Percent; p != nil && (*p < 0 || *p > 100) {
		errs = errs.Also(apis.ErrGeneric("must be between 0 and 100", "percent"))
	}
	if tt.Tag != "" {
		if msgs := validation.IsDNS1035Label(tt.Tag); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(tt.Tag, "tag", strings.Join(msgs, "; ")))
		}
	}
	if tt.URL != nil {
		errs = errs.Also(apis.ErrDisallowedFields("url"))
	}
	return errs
}

// validateTagHosts checks that "<tag>-<name>", the first label of a tag's
// host name, is a DNS label. Errors are relative to the spec.
func validateTagHosts(name string, traffic []TrafficTarget) *apis.FieldError {
	if name == "" {
		return nil
	}
	var errs *apis.FieldError
	for i, tt := range traffic {
		if tt.Tag == "" {
			continue
		}
		if host := tt.Tag + "-" + name; len(host) > validation.DNS1035LabelMaxLength {
			errs = errs.Also(apis.ErrInvalidValue(tt.Tag, "tag",
				fmt.Sprintf("%q, the tag's host label, is longer than %d characters", host, validation.DNS1035LabelMaxLength)).
				ViaFieldIndex("traffic", i))
		}
	}
	return errs
}
