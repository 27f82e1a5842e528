package v1

import (
	"context"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Validate checks a Service: its metadata, template and traffic, and on
// update that a user-named template was renamed if it changed.
func (s *Service) Validate(ctx context.Context) *apis.FieldError {
	errs := validateTopLevelMetadata(&s.ObjectMeta)
	errs = errs.Also(s.Spec.Validate(withParentName(ctx, s.Name)).ViaField("spec"))
	errs = errs.Also(validateTagHosts(s.Name, s.Spec.Traffic).ViaField("spec"))
	if base, ok := apis.GetBaseline(ctx).(*Service); ok && base != nil {
		errs = errs.Also(validateTemplateUpdate(&base.Spec.Template, &s.Spec.Template).ViaField("spec", "template"))
	}
	return errs
}

// Validate checks the template and the traffic; errors are relative to the
// spec.
func (ss *ServiceSpec) Validate(ctx context.Context) *apis.FieldError {
	errs := ss.ConfigurationSpec.Validate(ctx)
	return errs.Also(ss.RouteSpec.Validate(withinService(ctx)))
}
