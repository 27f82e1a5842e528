// Package admission is the admission of serverless profiles and of the pods they select: a
// mutating webhook on pod creation that matches the profiles (internal/serverless/profile),
// sizes the selected pod (internal/serverless/sizing) and marks it with the names of
// pkg/apis/serverless/v1alpha1 (scheduler, profile label, provisioned capacity and storage), or
// refuses a pod a serverless node cannot run; and a validating webhook for ServerlessProfiles
// (their own validation and the cluster's quota of profiles).
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/serverless/profile"
	"github.com/gantry-run/gantry/internal/serverless/sizing"
	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Paths the handlers are served at.
const (
	PodsPath     = "/serverless/pods"
	ProfilesPath = "/serverless/profiles"
)

// ProfileLister gives the ServerlessProfiles as the webhook knows them (an informer's cache).
type ProfileLister interface {
	ListProfiles(ctx context.Context) ([]*sv1alpha1.ServerlessProfile, error)
}

// Pods answers the admission of pods. On creation, a pod a profile selects gets
// schedulerName gantry-serverless, the profile label and its size's annotations, or is refused
// naming every field a serverless node cannot run; a pod no profile selects loses the size
// annotations it carries (only admission gives them, so metering cannot be fooled) and is
// refused if it asks for the serverless scheduler itself. On update, the profile label and the
// size annotations cannot change. cfg gives config-serverless.
func Pods(profiles ProfileLister, cfg config.Source) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if req.SubResource != "" || req.Kind.Kind != "Pod" {
			return admission.Allowed("")
		}
		pod := &corev1.Pod{}
		if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err))
		}
		switch req.Operation {
		case admissionv1.Create:
		case admissionv1.Update:
			old := &corev1.Pod{}
			if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the previous pod: %w", err))
			}
			if msg := changedMarks(old, pod); msg != "" {
				return admission.Denied(msg)
			}
			return admission.Allowed("")
		default:
			return admission.Allowed("")
		}
		if pod.Namespace == "" {
			pod.Namespace = req.Namespace
		}
		all, err := profiles.ListProfiles(ctx)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("listing ServerlessProfiles: %w", err))
		}
		var selected *sv1alpha1.ServerlessProfile
		if selectable(pod) {
			selected, err = profile.Select(all, profile.Pod{Namespace: pod.Namespace, Labels: pod.Labels})
			if err != nil {
				return admission.Denied(err.Error())
			}
		} else if name, ok := pod.Labels[sv1alpha1.ProfileLabel]; ok {
			return admission.Denied(fmt.Sprintf("metadata.labels[%s]: %q: %s", sv1alpha1.ProfileLabel, name, whyNotSelectable(pod)))
		}
		if selected == nil {
			return unselected(pod)
		}
		return selectedPod(pod, selected, cfg.Load().Serverless)
	})
}

// selectable reports whether a profile may select pod: not when it is already bound to a node
// (a static or DaemonSet pod names its node) nor when a DaemonSet owns it, whose pods belong
// on every node and never on a node of their own, as on Fargate.
func selectable(pod *corev1.Pod) bool {
	return whyNotSelectable(pod) == ""
}

func whyNotSelectable(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return "a pod created on a node (spec.nodeName " + pod.Spec.NodeName + ") cannot run on a serverless node"
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "DaemonSet" {
		return "DaemonSet pods (" + ref.Name + ") cannot run on serverless nodes"
	}
	return ""
}

// unselected strips the size annotations from a pod no profile selects, and refuses it when
// it asks for the serverless scheduler.
func unselected(pod *corev1.Pod) admission.Response {
	if pod.Spec.SchedulerName == sv1alpha1.SchedulerName {
		return admission.Denied(fmt.Sprintf("spec.schedulerName: %s is given by a ServerlessProfile, and none selects this pod (namespace %s); "+
			"create a profile that selects it, or leave the scheduler name unset", sv1alpha1.SchedulerName, pod.Namespace))
	}
	var ops []patchOp
	for _, a := range []string{sv1alpha1.CapacityProvisionedAnnotation, sv1alpha1.EphemeralStorageProvisionedAnnotation} {
		if _, ok := pod.Annotations[a]; ok {
			ops = append(ops, patchOp{Op: "remove", Path: "/metadata/annotations/" + escape(a)})
		}
	}
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return patched(ops)
}

// selectedPod marks a pod p selects, or refuses it naming every field a serverless node
// cannot run and a request no size holds.
func selectedPod(pod *corev1.Pod, p *sv1alpha1.ServerlessProfile, cfg *config.Serverless) admission.Response {
	var problems []string
	if fields := node.Unsupported(pod); len(fields) > 0 {
		problems = append(problems, "fields not supported: "+strings.Join(fields, ", "))
	}
	size, err := sizing.ForPod(cfg, pod)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return admission.Denied(fmt.Sprintf("Pod not supported on a serverless node (ServerlessProfile %s selects it): %s",
			p.Name, strings.Join(problems, "; ")))
	}
	ops := []patchOp{{Op: "add", Path: "/spec/schedulerName", Value: sv1alpha1.SchedulerName}}
	ops = append(ops, mapOps("/metadata/labels", pod.Labels, map[string]string{sv1alpha1.ProfileLabel: p.Name})...)
	ops = append(ops, mapOps("/metadata/annotations", pod.Annotations, map[string]string{
		sv1alpha1.CapacityProvisionedAnnotation:         size.Capacity.String(),
		sv1alpha1.EphemeralStorageProvisionedAnnotation: size.EphemeralStorage(),
	})...)
	return patched(ops)
}

// changedMarks says why an update of a pod is refused: the profile label and the size
// annotations are admission's, set once at creation.
func changedMarks(old, pod *corev1.Pod) string {
	var fields []string
	if old.Labels[sv1alpha1.ProfileLabel] != pod.Labels[sv1alpha1.ProfileLabel] {
		fields = append(fields, "metadata.labels["+sv1alpha1.ProfileLabel+"]")
	}
	for _, a := range []string{sv1alpha1.CapacityProvisionedAnnotation, sv1alpha1.EphemeralStorageProvisionedAnnotation} {
		if old.Annotations[a] != pod.Annotations[a] {
			fields = append(fields, "metadata.annotations["+a+"]")
		}
	}
	if len(fields) == 0 {
		return ""
	}
	return "must not change the field(s) a ServerlessProfile set at creation: " + strings.Join(fields, ", ")
}

// patchOp is one JSON patch operation (RFC 6902).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// mapOps sets keys in the map at path (labels, annotations), creating the map when the pod
// has none.
func mapOps(path string, cur, set map[string]string) []patchOp {
	if cur == nil {
		return []patchOp{{Op: "add", Path: path, Value: set}}
	}
	ops := make([]patchOp, 0, len(set))
	for _, k := range sortedKeys(set) {
		ops = append(ops, patchOp{Op: "add", Path: path + "/" + escape(k), Value: set[k]})
	}
	return ops
}

// escape makes a map key a JSON pointer token.
func escape(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}

func patched(ops []patchOp) admission.Response {
	raw, err := json.Marshal(ops)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	resp := admission.Allowed("")
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = raw, &pt
	return resp
}
