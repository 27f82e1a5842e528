package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// ConfigValidationPath is where the ConfigMap validator is served.
const ConfigValidationPath = "/config-validation"

// ConfigValidation refuses a create or update of one of Gantry's configuration ConfigMaps
// whose data does not parse, naming the ConfigMap and the key, so nothing malformed is ever
// stored. Other ConfigMaps pass.
func ConfigValidation() admission.Handler {
	return admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
			return admission.Allowed("")
		}
		if req.Namespace != config.Namespace || !config.IsConfigMap(req.Name) {
			return admission.Allowed("")
		}
		cm := &corev1.ConfigMap{}
		if err := json.Unmarshal(req.Object.Raw, cm); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding ConfigMap: %w", err))
		}
		if err := config.NewConfig().Apply(cm.Name, cm.Data); err != nil {
			return admission.Denied(err.Error())
		}
		return admission.Allowed("")
	})
}
