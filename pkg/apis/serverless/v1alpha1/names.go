package v1alpha1

// GroupName is the API group of Gantry's serverless types.
const GroupName = "serverless.gantry.dev"

// The names a selected pod carries. The admission webhook sets them; the serverless
// scheduler, the node and metering read them.
const (
	// SchedulerName is the spec.schedulerName of a pod a profile selected: the serverless
	// scheduler places it, kube-scheduler ignores it.
	SchedulerName = "gantry-serverless"
	// ProfileLabel names the profile a pod runs under. A pod may set it to pick a profile,
	// and must then match that profile.
	ProfileLabel = GroupName + "/profile"
	// CapacityProvisionedAnnotation is the size a pod was given, as EKS writes it:
	// "0.25vCPU 0.5GB" (see Capacity).
	CapacityProvisionedAnnotation = GroupName + "/capacity-provisioned"
	// EphemeralStorageProvisionedAnnotation is the ephemeral storage a pod was given, a
	// resource quantity ("20Gi").
	EphemeralStorageProvisionedAnnotation = GroupName + "/ephemeral-storage-provisioned"

	// ComputeTypeTaintKey and ComputeTypeTaintValue make the NoSchedule taint of a
	// serverless node, so no other pod lands there.
	ComputeTypeTaintKey   = GroupName + "/compute-type"
	ComputeTypeTaintValue = "serverless"
	// NodeNamePrefix starts the name of a serverless node, which continues with the pod's
	// address, dashes for dots: serverless-ip-10-42-128-5 (as Fargate's fargate-ip-…).
	NodeNamePrefix = "serverless-ip-"
	// NodePodAnnotation is on a serverless node: the namespace/name of the pod it runs.
	NodePodAnnotation = GroupName + "/pod"
)
