// Package webhook is the admission webhook of the serving.knative.dev API: it decodes the
// object under admission, applies the type's own SetDefaults and Validate, and answers the API
// server. It also refuses a malformed configuration ConfigMap (config-defaults, …) naming the
// key. It holds no rules of its own; those live with the types in pkg/apis.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Paths the handlers are served at.
const (
	DefaultingPath = "/defaulting"
	ValidationPath = "/validation"
)

// Object is an API type that defaults and validates itself.
type Object interface {
	SetDefaults(ctx context.Context)
	Validate(ctx context.Context) *apis.FieldError
	GetAnnotations() map[string]string
	SetAnnotations(map[string]string)
}

// kinds maps each admitted kind to a constructor of its Go type.
var kinds = map[schema.GroupVersionKind]func() Object{
	servingv1.SchemeGroupVersion.WithKind("Service"):       func() Object { return &servingv1.Service{} },
	servingv1.SchemeGroupVersion.WithKind("Configuration"): func() Object { return &servingv1.Configuration{} },
	servingv1.SchemeGroupVersion.WithKind("Revision"):      func() Object { return &servingv1.Revision{} },
	servingv1.SchemeGroupVersion.WithKind("Route"):         func() Object { return &servingv1.Route{} },
}

// Defaulting answers mutating admission with a JSON patch of the type's defaults, and stamps
// the creator and last modifier annotations as Knative does.
func Defaulting(cfg config.Source) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		obj, old, err := decode(req)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if obj == nil {
			return admission.Allowed("")
		}
		ctx = admissionContext(ctx, cfg, req, old)
		obj.SetDefaults(ctx)
		stampUser(obj, old, req)
		mutated, err := json.Marshal(obj)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding defaulted object: %w", err))
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, mutated)
	})
}

// Validation answers validating admission with the type's own validation; a refusal names
// every offending field.
func Validation(cfg config.Source) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		obj, old, err := decode(req)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if obj == nil {
			return admission.Allowed("")
		}
		ctx = admissionContext(ctx, cfg, req, old)
		if fe := obj.Validate(ctx); fe != nil {
			return admission.Denied(fe.Error())
		}
		return admission.Allowed("")
	})
}

// decode returns the object under admission and, on update, its previous version. Kinds the
// webhook does not know and deletions return a nil object: they are allowed unchanged.
func decode(req admission.Request) (obj, old Object, err error) {
	newObj, ok := kinds[schema.GroupVersionKind(req.Kind)]
	if !ok || req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect {
		return nil, nil, nil
	}
	// Status updates go through the status subresource; only the spec and metadata are the
	// user's to default and validate.
	if req.SubResource != "" {
		return nil, nil, nil
	}
	obj = newObj()
	if err := json.Unmarshal(req.Object.Raw, obj); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", req.Kind.Kind, err)
	}
	if req.Operation == admissionv1.Update {
		old = newObj()
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return nil, nil, fmt.Errorf("decoding the previous %s: %w", req.Kind.Kind, err)
		}
	}
	return obj, old, nil
}

func admissionContext(ctx context.Context, cfg config.Source, req admission.Request, old Object) context.Context {
	ctx = config.ToContext(ctx, cfg.Load())
	if req.Operation == admissionv1.Update && old != nil {
		return apis.WithinUpdate(ctx, old)
	}
	return apis.WithinCreate(ctx)
}

// stampUser records who created and who last changed the spec, as Knative does.
func stampUser(obj, old Object, req admission.Request) {
	user := req.UserInfo.Username
	if user == "" {
		return
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	switch {
	case old == nil:
		ann[servingv1.CreatorAnnotation] = user
		ann[servingv1.UpdaterAnnotation] = user
	case specChanged(obj, old):
		ann[servingv1.UpdaterAnnotation] = user
	}
	obj.SetAnnotations(ann)
}

func specChanged(obj, old Object) bool {
	a, errA := json.Marshal(specOf(obj))
	b, errB := json.Marshal(specOf(old))
	return errors.Join(errA, errB) != nil || string(a) != string(b)
}

func specOf(o Object) any {
	switch t := o.(type) {
	case *servingv1.Service:
		return t.Spec
	case *servingv1.Configuration:
		return t.Spec
	case *servingv1.Revision:
		return t.Spec
	case *servingv1.Route:
		return t.Spec
	}
	return nil
}
