// Package scheduler is the serverless scheduler: beside kube-scheduler, which ignores them,
// it places the pods whose schedulerName is gantry-serverless, one pod per node, as EKS on
// Fargate does. For each such pod it chooses an address from the part of the pod CIDR kept
// for serverless pods, registers a Node named after it (serverless-ip-10-42-128-5: the
// Node object is the address's reservation), tainted so no other pod lands there and sized
// to the pod's provisioned capacity, and binds the pod to it. The node agent then runs the
// pod at that address and size. When the pod is gone, so is its Node. One heartbeat keeps
// every serverless node's lease fresh.
//
// In a cluster every server that runs its node runs a scheduler: each keeps up only its own
// machine's serverless nodes (those whose address lies in its range), and the one holding a
// lease places new pods (Options.Elect).
package scheduler
