package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Reasons controllers put on Service conditions.
const (
	ReasonOutOfDate = "OutOfDate"
)

var serviceCondSet = apis.NewLivingConditionSet(
	ServiceConditionConfigurationsReady,
	ServiceConditionRoutesReady,
)

// GetConditionSet returns the conditions a Service is judged by.
func (*Service) GetConditionSet() apis.ConditionSet { return serviceCondSet }

// GetGroupVersionKind returns serving.knative.dev/v1 Service.
func (*Service) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Service")
}

// IsReady reports whether the status is for the current generation and Ready.
func (s *Service) IsReady() bool {
	return s.Generation == s.Status.ObservedGeneration && s.Status.IsReady()
}

func (ss *ServiceStatus) manage() apis.ConditionManager { return serviceCondSet.Manage(&ss.Status) }

// InitializeConditions sets every unset condition to Unknown.
func (ss *ServiceStatus) InitializeConditions() { ss.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (ss *ServiceStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return ss.manage().GetCondition(t)
}

// IsReady reports whether Ready is True.
func (ss *ServiceStatus) IsReady() bool { return ss.manage().IsHappy() }

// MarkConfigurationNotOwned records that a Configuration of the Service's
// name exists and belongs to someone else.
func (ss *ServiceStatus) MarkConfigurationNotOwned(name string) {
	ss.manage().MarkFalse(ServiceConditionConfigurationsReady, "NotOwned",
		"There is an existing Configuration %q that we do not own.", name)
}

// MarkRouteNotOwned records that a Route of the Service's name exists and
// belongs to someone else.
func (ss *ServiceStatus) MarkRouteNotOwned(name string) {
	ss.manage().MarkFalse(ServiceConditionRoutesReady, "NotOwned",
		"There is an existing Route %q that we do not own.", name)
}

// MarkConfigurationNotReconciled records that the Configuration has not
// caught up with its latest spec.
func (ss *ServiceStatus) MarkConfigurationNotReconciled() {
	ss.manage().MarkUnknown(ServiceConditionConfigurationsReady, ReasonOutOfDate,
		"The Configuration is still working to reflect the latest desired specification.")
}

// MarkRouteNotReconciled records that the Route has not caught up with its
// latest spec.
func (ss *ServiceStatus) MarkRouteNotReconciled() {
	ss.manage().MarkUnknown(ServiceConditionRoutesReady, ReasonOutOfDate,
		"The Route is still working to reflect the latest desired specification.")
}

// MarkRevisionNameTaken records that the template's chosen name is used by
// a Revision of another template.
func (ss *ServiceStatus) MarkRevisionNameTaken(name string) {
	ss.manage().MarkFalse(ServiceConditionRoutesReady, "RevisionNameTaken",
		"The revision name %q is taken", name)
}

// PropagateConfigurationStatus copies the Configuration's revision names and
// mirrors its Ready condition into ConfigurationsReady.
func (ss *ServiceStatus) PropagateConfigurationStatus(cs *ConfigurationStatus) {
	ss.ConfigurationStatusFields = cs.ConfigurationStatusFields
	ss.propagate(ServiceConditionConfigurationsReady, cs.GetCondition(ConfigurationConditionReady))
}

// PropagateRouteStatus copies the Route's URL, address and traffic and
// mirrors its Ready condition into RoutesReady.
func (ss *ServiceStatus) PropagateRouteStatus(rs *RouteStatus) {
	ss.RouteStatusFields = *rs.RouteStatusFields.DeepCopy()
	ss.propagate(ServiceConditionRoutesReady, rs.GetCondition(RouteConditionReady))
}

func (ss *ServiceStatus) propagate(t apis.ConditionType, c *apis.Condition) {
	m := ss.manage()
	switch {
	case c == nil:
		m.MarkUnknown(t, "", "")
	case c.Status == corev1.ConditionTrue:
		m.MarkTrue(t)
	case c.Status == corev1.ConditionFalse:
		m.MarkFalse(t, c.Reason, "%s", c.Message)
	default:
		m.MarkUnknown(t, c.Reason, "%s", c.Message)
	}
}
