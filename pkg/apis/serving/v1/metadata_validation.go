package v1

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

type parentKey struct{}

// withParentName tells template validation the name of the Service or
// Configuration that owns the template.
func withParentName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, parentKey{}, name)
}

func parentName(ctx context.Context) string {
	s, _ := ctx.Value(parentKey{}).(string)
	return s
}

// validateObjectName checks metadata.name (or generateName) of a top-level
// object: a DNS-1035 label of at most 63 characters, since it becomes part of
// host names and Kubernetes Service names.
func validateObjectName(om *metav1.ObjectMeta) *apis.FieldError {
	switch {
	case om.Name != "":
		if msgs := validation.IsDNS1035Label(om.Name); len(msgs) > 0 {
			return apis.ErrInvalidValue(om.Name, "name", strings.Join(msgs, "; "))
		}
	case om.GenerateName != "":
		prefix := strings.TrimSuffix(om.GenerateName, "-")
		// The API server appends five characters.
		if msgs := validation.IsDNS1035Label(prefix); len(msgs) > 0 || len(om.GenerateName)+5 > validation.DNS1035LabelMaxLength {
			return apis.ErrInvalidValue(om.GenerateName, "generateName",
				"must be a DNS-1035 label prefix of at most 58 characters")
		}
	default:
		return apis.ErrMissingOneOf("name", "generateName")
	}
	return nil
}

// validateNoAutoscalingAnnotations refuses autoscaling annotations on a
// Service, Configuration or Route: they only take effect on the template.
func validateNoAutoscalingAnnotations(om *metav1.ObjectMeta) *apis.FieldError {
	var errs *apis.FieldError
	for k := range om.Annotations {
		if strings.HasPrefix(k, autoscaling.GroupName+"/") {
			errs = errs.Also(apis.ErrGeneric(
				"autoscaling annotations must be put under spec.template.metadata.annotations to take effect",
				"annotations["+k+"]"))
		}
	}
	return errs
}

// validateTopLevelMetadata checks the metadata of a Service, Configuration
// or Route; errors are relative to the object (metadata.…).
func validateTopLevelMetadata(om *metav1.ObjectMeta) *apis.FieldError {
	return validateObjectName(om).Also(validateNoAutoscalingAnnotations(om)).ViaField("metadata")
}
