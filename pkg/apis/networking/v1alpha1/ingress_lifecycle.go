package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

var ingressCondSet = apis.NewLivingConditionSet(
	IngressConditionNetworkConfigured,
	IngressConditionLoadBalancerReady,
)

// GetConditionSet returns the conditions an Ingress is judged by.
func (*Ingress) GetConditionSet() apis.ConditionSet { return ingressCondSet }

// GetGroupVersionKind returns networking.internal.knative.dev/v1alpha1 Ingress.
func (*Ingress) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Ingress")
}

// IsReady reports whether the status is for the current generation and Ready.
func (i *Ingress) IsReady() bool {
	return i.Generation == i.Status.ObservedGeneration && i.Status.manage().IsHappy()
}

func (s *IngressStatus) manage() apis.ConditionManager { return ingressCondSet.Manage(&s.Status) }

// InitializeConditions sets every unset condition to Unknown.
func (s *IngressStatus) InitializeConditions() { s.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (s *IngressStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return s.manage().GetCondition(t)
}

// MarkNetworkConfigured records that the gateway has programmed the rules.
func (s *IngressStatus) MarkNetworkConfigured() {
	s.manage().MarkTrue(IngressConditionNetworkConfigured)
}

// MarkLoadBalancerReady records that the gateway serves the rules' hosts.
func (s *IngressStatus) MarkLoadBalancerReady() {
	s.manage().MarkTrue(IngressConditionLoadBalancerReady)
}

// MarkIngressNotReady records why the gateway does not serve the Ingress yet.
func (s *IngressStatus) MarkIngressNotReady(reason, message string) {
	s.manage().MarkUnknown(IngressConditionLoadBalancerReady, reason, "%s", message)
}
