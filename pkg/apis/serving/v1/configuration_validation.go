package v1

import (
	"context"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Validate checks a Configuration: its metadata, its template, and on update
// that a user-named template was renamed if it changed.
func (c *Configuration) Validate(ctx context.Context) *apis.FieldError {
	errs := validateTopLevelMetadata(&c.ObjectMeta)
	errs = errs.Also(c.Spec.Validate(withParentName(ctx, c.Name)).ViaField("spec"))
	if base, ok := apis.GetBaseline(ctx).(*Configuration); ok && base != nil {
		errs = errs.Also(validateTemplateUpdate(&base.Spec.Template, &c.Spec.Template).ViaField("spec", "template"))
	}
	return errs
}

// Validate checks the template; errors are relative to the spec.
func (cs *ConfigurationSpec) Validate(ctx context.Context) *apis.FieldError {
	return cs.Template.Validate(ctx).ViaField("template")
}
