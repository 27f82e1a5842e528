package admission

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Names of the webhook configurations and of the webhooks in them.
const (
	PodsWebhookName     = "pods.serverless.gantry.dev"
	ProfilesWebhookName = "profiles.serverless.gantry.dev"
)

// timeoutSeconds bounds each admission call; both webhooks answer from memory, but for the
// count of profiles.
const timeoutSeconds = 10

// Configurations are the webhook configurations that send pods and ServerlessProfiles to the
// webhook at baseURL (https://host:port), trusting caBundle.
//
// Both fail closed (failurePolicy Fail). A pod created while the webhook cannot answer would
// otherwise escape its profile: it would run on the shared node, beside other tenants' pods,
// unmetered, which is exactly what a profile promises not to happen; refusing it leaves its
// controller to retry, and the API's error says why. A profile admitted unvalidated could
// break the quotas. The price of failing closed is that pods cannot be created while Gantry's
// webhook is down: the system namespaces are therefore left out (their pods are never
// selected, and validation refuses a selector naming one), so a broken webhook can never keep
// the cluster's own parts from starting; in standalone mode the webhook lives in the same
// process as the API server and is up whenever it is.
func Configurations(baseURL string, caBundle []byte) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	sideEffects := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	labels := map[string]string{"app.kubernetes.io/managed-by": "gantry"}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: PodsWebhookName, Labels: labels},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         PodsWebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + PodsPath), CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				// Creation to select and mark; update to keep the marks as they were given.
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: sv1alpha1.SystemNamespaces,
			}}},
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](timeoutSeconds),
			// Gantry's webhook decides from the pod's namespace and labels, which no later
			// webhook is expected to change; it does not need to see the pod again.
			ReinvocationPolicy: ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ProfilesWebhookName, Labels: labels},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         ProfilesWebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + ProfilesPath), CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{sv1alpha1.GroupName}, APIVersions: []string{sv1alpha1.SchemeGroupVersion.Version},
					Resources: []string{"serverlessprofiles"},
					Scope:     ptr.To(admissionregistrationv1.ClusterScope),
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](timeoutSeconds),
		}},
	}
	return mutating, validating
}

// Register creates or updates the webhook configurations for the webhook at baseURL.
func Register(ctx context.Context, c kubernetes.Interface, baseURL string, caBundle []byte) error {
	mutating, validating := Configurations(baseURL, caBundle)
	mc := c.AdmissionregistrationV1().MutatingWebhookConfigurations()
	vc := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	var errs []error
	cur, err := mc.Get(ctx, mutating.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = mc.Create(ctx, mutating, metav1.CreateOptions{})
	case err == nil:
		cur.Webhooks, cur.Labels = mutating.Webhooks, mutating.Labels
		_, err = mc.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("registering %s: %w", mutating.Name, err))
	}
	curV, err := vc.Get(ctx, validating.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = vc.Create(ctx, validating, metav1.CreateOptions{})
	case err == nil:
		curV.Webhooks, curV.Labels = validating.Webhooks, validating.Labels
		_, err = vc.Update(ctx, curV, metav1.UpdateOptions{})
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("registering %s: %w", validating.Name, err))
	}
	return errors.Join(errs...)
}
