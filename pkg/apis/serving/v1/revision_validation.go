package v1

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// Validate checks a Revision: its name, autoscaling annotations and spec,
// and on update that the spec did not change.
func (r *Revision) Validate(ctx context.Context) *apis.FieldError {
	errs := validateObjectName(&r.ObjectMeta).ViaField("metadata")
	errs = errs.Also(autoscalingOptions(ctx).ValidateAnnotations(r.Annotations))
	errs = errs.Also(r.Spec.Validate(ctx).ViaField("spec"))
	if base, ok := apis.GetBaseline(ctx).(*Revision); ok && base != nil {
		if !equality.Semantic.DeepEqual(base.Spec, r.Spec) {
			errs = errs.Also(apis.ErrGeneric("immutable field(s) changed: a revision's spec never changes after creation", "spec"))
		}
	}
	return errs
}

// Validate checks a template: a user-chosen name must be a DNS-1035 label
// starting with "<parent>-", its autoscaling annotations must be valid, and
// so must its spec. Errors are relative to the template.
func (rts *RevisionTemplateSpec) Validate(ctx context.Context) *apis.FieldError {
	var errs *apis.FieldError
	if name := rts.Name; name != "" {
		if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(name, "metadata.name", strings.Join(msgs, "; ")))
		}
		if parent := parentName(ctx); parent != "" && !strings.HasPrefix(name, parent+"-") {
			errs = errs.Also(apis.ErrInvalidValue(name, "metadata.name",
				fmt.Sprintf("the revision name must start with %q", parent+"-")))
		}
	}
	if rts.GenerateName != "" {
		errs = errs.Also(apis.ErrDisallowedFields("metadata.generateName"))
	}
	errs = errs.Also(autoscalingOptions(ctx).ValidateAnnotations(rts.Annotations))
	return errs.Also(rts.Spec.Validate(ctx).ViaField("spec"))
}

// autoscalingOptions are the config-autoscaler settings in ctx that the autoscaling
// annotations are checked against. Both classes are accepted: internal/autoscaler/kpa and
// internal/autoscaler/hpa honour them.
func autoscalingOptions(ctx context.Context) autoscaling.Options {
	as := config.FromContextOrDefaults(ctx).Autoscaler
	return autoscaling.Options{
		AllowZeroInitialScale: as.AllowZeroInitialScale,
		MaxScaleLimit:         as.MaxScaleLimit,
	}
}

// validateTemplateUpdate refuses a template change that keeps a
// user-chosen name: the name would have to name two different Revisions.
// Errors are relative to the template.
func validateTemplateUpdate(base, cur *RevisionTemplateSpec) *apis.FieldError {
	if base == nil || cur.Name == "" || cur.Name != base.Name {
		return nil
	}
	if equality.Semantic.DeepEqual(base.Spec, cur.Spec) &&
		equality.Semantic.DeepEqual(base.Labels, cur.Labels) &&
		equality.Semantic.DeepEqual(base.Annotations, cur.Annotations) {
		return nil
	}
	return apis.ErrInvalidValue(cur.Name, "metadata.name",
		"the template changed but its name did not: a changed template needs a new revision name")
}

// Validate checks the serving settings against the config-defaults carried
// by ctx, then the pod spec. Errors are relative to the spec.
func (rs *RevisionSpec) Validate(ctx context.Context) *apis.FieldError {
	cfg := config.FromContextOrDefaults(ctx)
	d := cfg.Defaults
	var errs *apis.FieldError
	if cc := rs.ContainerConcurrency; cc != nil && (*cc < 0 || *cc > d.ContainerConcurrencyMaxLimit) {
		errs = errs.Also(apis.ErrOutOfBoundsValue(*cc, 0, d.ContainerConcurrencyMaxLimit, "containerConcurrency"))
	}
	timeout := d.RevisionTimeoutSeconds
	if t := rs.TimeoutSeconds; t != nil {
		timeout = *t
		if *t < 0 || *t > d.MaxRevisionTimeoutSeconds {
			errs = errs.Also(apis.ErrOutOfBoundsValue(*t, 0, d.MaxRevisionTimeoutSeconds, "timeoutSeconds"))
		}
	}
	if t := rs.ResponseStartTimeoutSeconds; t != nil && (*t < 0 || *t > timeout) {
		errs = errs.Also(apis.ErrOutOfBoundsValue(*t, 0, timeout, "responseStartTimeoutSeconds"))
	}
	if t := rs.IdleTimeoutSeconds; t != nil && (*t < 0 || *t > timeout) {
		errs = errs.Also(apis.ErrOutOfBoundsValue(*t, 0, timeout, "idleTimeoutSeconds"))
	}
	return errs.Also(validatePodSpec(&rs.PodSpec, cfg.Features))
}
