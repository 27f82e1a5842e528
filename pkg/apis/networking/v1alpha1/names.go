package v1alpha1

// Headers the ingress sets on every request it sends to a revision, as Knative's: the
// activator reads them to know which revision a request that reached it through the
// revision's Service is for.
const (
	RevisionHeaderName  = "Knative-Serving-Revision"
	NamespaceHeaderName = "Knative-Serving-Namespace"
)

// Labels of a revision's Services, as Knative's serverless service (SKS) sets them.
const (
	// ServerlessServiceLabelKey names the revision the Service serves.
	ServerlessServiceLabelKey = GroupName + "/serverlessservice"
	// ServiceTypeLabelKey is ServiceTypePublic on the Service ingresses send to (the
	// revision's name) and ServiceTypePrivate on the one that selects its pods.
	ServiceTypeLabelKey = GroupName + "/serviceType"
	ServiceTypePublic   = "Public"
	ServiceTypePrivate  = "Private"
)
