package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/pkg/apis"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// ProfileCounter counts the ServerlessProfiles that exist, from the API itself rather than a
// cache, so the quota holds for profiles created in quick succession.
type ProfileCounter interface {
	CountProfiles(ctx context.Context) (int, error)
}

// Profiles answers the validating admission of ServerlessProfiles: the type's own validation
// (the selectors, the immutable spec) and, on creation, the quota of MaxProfiles.
func Profiles(counter ProfileCounter) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
			return admission.Allowed("")
		}
		p := &sv1alpha1.ServerlessProfile{}
		if err := json.Unmarshal(req.Object.Raw, p); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the ServerlessProfile: %w", err))
		}
		vctx := apis.WithinCreate(ctx)
		if req.Operation == admissionv1.Update {
			old := &sv1alpha1.ServerlessProfile{}
			if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the previous ServerlessProfile: %w", err))
			}
			vctx = apis.WithinUpdate(ctx, old)
			// A profile on its way out only loses its finalizers.
			if old.DeletionTimestamp != nil {
				return admission.Allowed("")
			}
		}
		if fe := p.Validate(vctx); fe != nil {
			return admission.Denied(fe.Error())
		}
		if req.Operation == admissionv1.Create {
			n, err := counter.CountProfiles(ctx)
			if err != nil {
				return admission.Errored(http.StatusInternalServerError, fmt.Errorf("counting ServerlessProfiles: %w", err))
			}
			if n >= sv1alpha1.MaxProfiles {
				return admission.Denied(fmt.Sprintf("a cluster has at most %d ServerlessProfiles and there are %d: delete one before creating %s",
					sv1alpha1.MaxProfiles, n, p.Name))
			}
		}
		return admission.Allowed("")
	})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
