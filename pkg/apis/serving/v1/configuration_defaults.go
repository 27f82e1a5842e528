package v1

import "context"

// SetDefaults fills the unset fields of the Configuration's template.
func (c *Configuration) SetDefaults(ctx context.Context) {
	c.Spec.SetDefaults(ctx)
}

// SetDefaults fills the unset fields of the template.
func (cs *ConfigurationSpec) SetDefaults(ctx context.Context) {
	cs.Template.SetDefaults(ctx)
}
