// Package dns is the cluster DNS of gantry server: a DNS server on the pods' bridge that
// answers for the cluster domain (cluster.local) from the Kubernetes API and forwards every
// other name to the host's resolvers.
//
// In the cluster domain it answers, as CoreDNS's kubernetes plugin does:
//
//	<svc>.<ns>.svc.cluster.local               a Knative Route's cluster host (from the
//	                                           ClusterLocal rules of its Ingress): the gateway's
//	                                           address on the bridge; else a Service: its
//	                                           ClusterIPs, the ready endpoints of a headless
//	                                           one, the CNAME of an ExternalName one
//	<endpoint>.<svc>.<ns>.svc.cluster.local    an endpoint of a headless Service, by its hostname
//	                                           or its address with dashes (10-42-0-7)
//	_<port>._<proto>.<svc>.<ns>.svc.cluster.local   SRV records of a Service's named ports
//	<a-b-c-d>.<ns>.pod.cluster.local           the address a-b-c-d
//
// A name that exists without records of the asked type gets an empty answer (NODATA); an
// unknown name gets NXDOMAIN; both carry the zone's SOA so resolvers cache them briefly.
//
// The package also writes what a pod's /etc/resolv.conf says (package resolvconf).
package dns
