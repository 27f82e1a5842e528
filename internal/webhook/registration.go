package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Names of the webhook configurations and of the webhooks in them.
const (
	DefaultingName       = "webhook.serving.knative.dev"
	ValidationName       = "validation.webhook.serving.knative.dev"
	ConfigValidationName = "config.webhook.serving.gantry.dev"
)

// timeoutSeconds bounds each admission call; the webhook answers from memory.
const timeoutSeconds = 10

// Configurations are the webhook configurations that send serving.knative.dev objects to the
// webhook at baseURL (https://host:port), trusting caBundle.
func Configurations(baseURL string, caBundle []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	resources := make([]string, 0, len(kinds))
	for gvk := range kinds {
		resources = append(resources, plural(gvk.Kind))
	}
	slices.Sort(resources)
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{servingv1.SchemeGroupVersion.Group},
			APIVersions: []string{servingv1.SchemeGroupVersion.Version},
			Resources:   resources,
			Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}}
	sideEffects := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultingName, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    DefaultingName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + DefaultingPath), CABundle: caBundle},
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](timeoutSeconds),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ValidationName, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ValidationName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + ValidationPath), CABundle: caBundle},
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](timeoutSeconds),
		}},
	}
	return mutating, validating
}

// ConfigConfiguration sends creates and updates of ConfigMaps in Gantry's configuration
// namespace to the ConfigMap validator at baseURL.
func ConfigConfiguration(baseURL string, caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	sideEffects := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigValidationName, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         ConfigValidationName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + ConfigValidationPath), CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: config.Namespace}},
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](timeoutSeconds),
		}},
	}
}

func plural(kind string) string {
	switch kind {
	case "Service":
		return "services"
	case "Configuration":
		return "configurations"
	case "Revision":
		return "revisions"
	case "Route":
		return "routes"
	}
	panic("webhook: no plural for kind " + kind)
}

// Register creates or updates the webhook configurations for the webhook at baseURL.
func Register(ctx context.Context, c kubernetes.Interface, baseURL string, caBundle []byte) error {
	mutating, validating := Configurations(baseURL, caBundle)
	configs := ConfigConfiguration(baseURL, caBundle)
	mc := c.AdmissionregistrationV1().MutatingWebhookConfigurations()
	vc := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	upsertValidating := func(want *admissionregistrationv1.ValidatingWebhookConfiguration) error {
		return upsert(ctx, want.Name, vc.Get, func() error { _, err := vc.Create(ctx, want, metav1.CreateOptions{}); return err },
			func(cur *admissionregistrationv1.ValidatingWebhookConfiguration) error {
				cur.Webhooks, cur.Labels = want.Webhooks, want.Labels
				_, err := vc.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			})
	}
	return errors.Join(
		upsert(ctx, mutating.Name, mc.Get, func() error { _, err := mc.Create(ctx, mutating, metav1.CreateOptions{}); return err },
			func(cur *admissionregistrationv1.MutatingWebhookConfiguration) error {
				cur.Webhooks, cur.Labels = mutating.Webhooks, mutating.Labels
				_, err := mc.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			}),
		upsertValidating(validating),
		upsertValidating(configs),
	)
}

// upsert creates the object called name when get finds none, and updates the one it finds.
func upsert[T any](ctx context.Context, name string, get func(context.Context, string, metav1.GetOptions) (T, error),
	create func() error, update func(T) error) error {
	cur, err := get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if err := create(); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("reading %s: %w", name, err)
	default:
		if err := update(cur); err != nil {
			return fmt.Errorf("updating %s: %w", name, err)
		}
	}
	return nil
}
