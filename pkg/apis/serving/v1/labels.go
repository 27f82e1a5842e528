package v1

// Label and annotation keys of serving.knative.dev. Controllers put the
// labels on the children they create so every object can be traced to its
// parents.
const (
	// ServiceLabelKey names the Service that owns an object.
	ServiceLabelKey = GroupName + "/service"
	// ServiceUIDLabelKey carries the UID of that Service.
	ServiceUIDLabelKey = GroupName + "/serviceUID"
	// ConfigurationLabelKey names the Configuration that owns an object.
	ConfigurationLabelKey = GroupName + "/configuration"
	// ConfigurationUIDLabelKey carries the UID of that Configuration.
	ConfigurationUIDLabelKey = GroupName + "/configurationUID"
	// ConfigurationGenerationLabelKey carries the Configuration generation
	// that stamped a Revision.
	ConfigurationGenerationLabelKey = GroupName + "/configurationGeneration"
	// RevisionLabelKey names the Revision an object belongs to.
	RevisionLabelKey = GroupName + "/revision"
	// RevisionUID carries the UID of that Revision.
	RevisionUID = GroupName + "/revisionUID"
	// RouteLabelKey names the Route that routes to an object.
	RouteLabelKey = GroupName + "/route"
	// RoutingStateLabelKey says whether a Revision is routed to: one of
	// RoutingStateActive, RoutingStateReserve, RoutingStatePending.
	RoutingStateLabelKey = GroupName + "/routingState"
	// RoutingStateModifiedAnnotationKey is when RoutingStateLabelKey last changed.
	RoutingStateModifiedAnnotationKey = GroupName + "/routingStateModified"
	// RoutesAnnotationKey lists the Routes that route to a Revision.
	RoutesAnnotationKey = GroupName + "/routes"
	// CreatorAnnotation is the user who created an object.
	CreatorAnnotation = GroupName + "/creator"
	// UpdaterAnnotation is the user who last changed an object's spec.
	UpdaterAnnotation = GroupName + "/lastModifier"
	// RevisionLastPinnedAnnotationKey is when a Revision was last routed to.
	RevisionLastPinnedAnnotationKey = GroupName + "/lastPinned"
	// RolloutDurationKey sets how long a gradual rollout takes.
	RolloutDurationKey = GroupName + "/rollout-duration"
	// ProgressDeadlineAnnotationKey bounds how long a Revision may take to
	// become ready.
	ProgressDeadlineAnnotationKey = GroupName + "/progress-deadline"
	// QueueSidecarResourcePercentageAnnotationKey sizes queue-proxy relative
	// to the user container.
	QueueSidecarResourcePercentageAnnotationKey = "queue.sidecar." + GroupName + "/resource-percentage"
	// VisibilityLabelKey set to ClusterLocal keeps a Route off the public domain.
	VisibilityLabelKey = "networking.knative.dev/visibility"
	// VisibilityClusterLocal is the value of VisibilityLabelKey for private routes.
	VisibilityClusterLocal = "cluster-local"
)

// RoutingState values.
const (
	RoutingStateUnset   = ""
	RoutingStatePending = "pending"
	RoutingStateActive  = "active"
	RoutingStateReserve = "reserve"
)
