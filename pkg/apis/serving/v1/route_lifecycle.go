package v1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Reasons controllers put on Route conditions.
const (
	ReasonRevisionMissing      = "RevisionMissing"
	ReasonConfigurationMissing = "ConfigurationMissing"
	ReasonIngressNotConfigured = "IngressNotConfigured"
)

var routeCondSet = apis.NewLivingConditionSet(
	RouteConditionAllTrafficAssigned,
	RouteConditionIngressReady,
)

// GetConditionSet returns the conditions a Route is judged by.
func (*Route) GetConditionSet() apis.ConditionSet { return routeCondSet }

// GetGroupVersionKind returns serving.knative.dev/v1 Route.
func (*Route) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Route")
}

// IsReady reports whether the status is for the current generation and Ready.
func (r *Route) IsReady() bool {
	return r.Generation == r.Status.ObservedGeneration && r.Status.IsReady()
}

func (rs *RouteStatus) manage() apis.ConditionManager { return routeCondSet.Manage(&rs.Status) }

// InitializeConditions sets every unset condition to Unknown.
func (rs *RouteStatus) InitializeConditions() { rs.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (rs *RouteStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return rs.manage().GetCondition(t)
}

// IsReady reports whether Ready is True.
func (rs *RouteStatus) IsReady() bool { return rs.manage().IsHappy() }

// MarkTrafficAssigned records that every target resolved.
func (rs *RouteStatus) MarkTrafficAssigned() {
	rs.manage().MarkTrue(RouteConditionAllTrafficAssigned)
}

// MarkMissingTrafficTarget records that a target names a Revision or
// Configuration ("Revision", "Configuration") that does not exist.
func (rs *RouteStatus) MarkMissingTrafficTarget(kind, name string) {
	rs.manage().MarkFalse(RouteConditionAllTrafficAssigned, kind+"Missing",
		"%s", fmt.Sprintf("%s %q referenced in traffic not found.", kind, name))
}

// MarkConfigurationNotReady records that a target's Configuration has no
// ready Revision yet.
func (rs *RouteStatus) MarkConfigurationNotReady(name string) {
	rs.manage().MarkUnknown(RouteConditionAllTrafficAssigned, "RevisionMissing",
		"Configuration %q is waiting for a Revision to become ready.", name)
}

// MarkConfigurationFailed records that a target's Configuration failed.
func (rs *RouteStatus) MarkConfigurationFailed(name string) {
	rs.manage().MarkFalse(RouteConditionAllTrafficAssigned, "RevisionMissing",
		"Configuration %q does not have any ready Revision.", name)
}

// MarkRevisionNotReady records that a target's Revision is not ready yet.
func (rs *RouteStatus) MarkRevisionNotReady(name string) {
	rs.manage().MarkUnknown(RouteConditionAllTrafficAssigned, "RevisionMissing",
		"Revision %q is not yet ready.", name)
}

// MarkRevisionFailed records that a target's Revision failed.
func (rs *RouteStatus) MarkRevisionFailed(name string) {
	rs.manage().MarkFalse(RouteConditionAllTrafficAssigned, "RevisionMissing",
		"Revision %q failed to become ready.", name)
}

// MarkIngressReady records that the gateway serves the Route.
func (rs *RouteStatus) MarkIngressReady() { rs.manage().MarkTrue(RouteConditionIngressReady) }

// MarkIngressNotReady records that the gateway does not serve the Route yet.
func (rs *RouteStatus) MarkIngressNotReady(reason, message string) {
	rs.manage().MarkUnknown(RouteConditionIngressReady, reason, "%s", message)
}

// MarkIngressFailed records that the gateway could not be programmed.
func (rs *RouteStatus) MarkIngressFailed(reason, message string) {
	rs.manage().MarkFalse(RouteConditionIngressReady, reason, "%s", message)
}
