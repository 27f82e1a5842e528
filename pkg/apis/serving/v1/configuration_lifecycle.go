package v1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Reasons controllers put on Configuration conditions.
const (
	ReasonRevisionFailed         = "RevisionFailed"
	ReasonRevisionCreationFailed = "RevisionFailed"
)

var configurationCondSet = apis.NewLivingConditionSet()

// GetConditionSet returns the conditions a Configuration is judged by.
func (*Configuration) GetConditionSet() apis.ConditionSet { return configurationCondSet }

// GetGroupVersionKind returns serving.knative.dev/v1 Configuration.
func (*Configuration) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Configuration")
}

// IsReady reports whether the status is for the current generation and Ready.
func (c *Configuration) IsReady() bool {
	return c.Generation == c.Status.ObservedGeneration && c.Status.IsReady()
}

func (cs *ConfigurationStatus) manage() apis.ConditionManager {
	return configurationCondSet.Manage(&cs.Status)
}

// InitializeConditions sets every unset condition to Unknown.
func (cs *ConfigurationStatus) InitializeConditions() { cs.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (cs *ConfigurationStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return cs.manage().GetCondition(t)
}

// IsReady reports whether Ready is True.
func (cs *ConfigurationStatus) IsReady() bool { return cs.manage().IsHappy() }

// SetLatestCreatedRevisionName records a newly stamped Revision. Until it is
// ready, the Configuration is not: Ready becomes Unknown unless the same
// Revision is also the latest ready one.
func (cs *ConfigurationStatus) SetLatestCreatedRevisionName(name string) {
	cs.LatestCreatedRevisionName = name
	if cs.LatestReadyRevisionName != name {
		cs.manage().MarkUnknown(ConfigurationConditionReady, "", "")
	}
}

// SetLatestReadyRevisionName records the newest ready Revision; when it is
// also the latest created one, the Configuration is Ready.
func (cs *ConfigurationStatus) SetLatestReadyRevisionName(name string) {
	cs.LatestReadyRevisionName = name
	if cs.LatestReadyRevisionName == cs.LatestCreatedRevisionName {
		cs.manage().MarkTrue(ConfigurationConditionReady)
	}
}

// MarkLatestCreatedFailed records that the latest created Revision failed.
func (cs *ConfigurationStatus) MarkLatestCreatedFailed(name, message string) {
	cs.manage().MarkFalse(ConfigurationConditionReady, ReasonRevisionFailed,
		"Revision %q failed with message: %s.", name, message)
}

// MarkRevisionCreationFailed records that a Revision could not be created.
func (cs *ConfigurationStatus) MarkRevisionCreationFailed(message string) {
	cs.manage().MarkFalse(ConfigurationConditionReady, ReasonRevisionCreationFailed,
		"%s", fmt.Sprintf("Revision creation failed with message: %s.", message))
}

// MarkLatestReadyDeleted records that the latest ready Revision is gone.
func (cs *ConfigurationStatus) MarkLatestReadyDeleted() {
	cs.manage().MarkFalse(ConfigurationConditionReady, "RevisionDeleted",
		"Revision %q was deleted.", cs.LatestReadyRevisionName)
	cs.LatestReadyRevisionName = ""
}
