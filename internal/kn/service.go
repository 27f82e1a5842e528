package kn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// ServiceOptions are the flags of `gantry service create|update` as parsed values. A zero
// field (nil, empty) leaves the Service's value as it is.
type ServiceOptions struct {
	Image            string
	Env              KeyValues
	Annotations      KeyValues
	Port             *int32
	ConcurrencyLimit *int64
	ScaleMin         *int
	ScaleMax         *int
	Traffic          []TrafficShare
	Tags             []TagAssignment
	Untags           []string
}

// ErrNoImage is returned when a Service would be created without an image.
var ErrNoImage = errors.New("--image is required")

// NewService is the Service `gantry service create NAME` sends: opts applied to an empty
// Service with one container.
func NewService(namespace, name string, opts ServiceOptions) (*servingv1.Service, error) {
	if opts.Image == "" {
		return nil, ErrNoImage
	}
	svc := &servingv1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.SchemeGroupVersion.String(), Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}
	svc.Spec.Template.Spec.Containers = []corev1.Container{{}}
	if err := ApplyServiceOptions(svc, opts); err != nil {
		return nil, err
	}
	return svc, nil
}

// ApplyServiceOptions changes svc as opts ask. The traffic flags are checked against the
// Service's traffic; nothing is changed when they do not fit.
func ApplyServiceOptions(svc *servingv1.Service, opts ServiceOptions) error {
	tmpl := &svc.Spec.Template
	if len(tmpl.Spec.Containers) == 0 {
		tmpl.Spec.Containers = []corev1.Container{{}}
	}
	if len(opts.Traffic) > 0 || len(opts.Tags) > 0 || len(opts.Untags) > 0 {
		traffic, err := EditTraffic(svc.Spec.Traffic, opts.Traffic, opts.Tags, opts.Untags)
		if err != nil {
			return err
		}
		svc.Spec.Traffic = traffic
	}
	c := &tmpl.Spec.Containers[0]
	if opts.Image != "" {
		c.Image = opts.Image
	}
	c.Env = applyEnv(c.Env, opts.Env)
	if opts.Port != nil {
		c.Ports = []corev1.ContainerPort{{ContainerPort: *opts.Port}}
	}
	if opts.ConcurrencyLimit != nil {
		tmpl.Spec.ContainerConcurrency = opts.ConcurrencyLimit
	}
	if opts.ScaleMin != nil {
		tmpl.Annotations = setKey(tmpl.Annotations, autoscaling.MinScaleAnnotationKey, strconv.Itoa(*opts.ScaleMin))
	}
	if opts.ScaleMax != nil {
		tmpl.Annotations = setKey(tmpl.Annotations, autoscaling.MaxScaleAnnotationKey, strconv.Itoa(*opts.ScaleMax))
	}
	// Annotations go to the revision template, where Knative reads the autoscaling ones, and
	// the others also to the Service, which passes them to its Configuration and Route.
	for _, kv := range opts.Annotations.Set {
		tmpl.Annotations = setKey(tmpl.Annotations, kv.Key, kv.Value)
		if !isAutoscaling(kv.Key) {
			svc.Annotations = setKey(svc.Annotations, kv.Key, kv.Value)
		}
	}
	for _, k := range opts.Annotations.Remove {
		delete(tmpl.Annotations, k)
		delete(svc.Annotations, k)
	}
	return nil
}

func isAutoscaling(key string) bool {
	return strings.HasPrefix(key, autoscaling.GroupName+"/")
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// applyEnv sets and removes variables, keeping the others in their order.
func applyEnv(env []corev1.EnvVar, kv KeyValues) []corev1.EnvVar {
	if kv.Empty() {
		return env
	}
	remove := map[string]bool{}
	for _, k := range kv.Remove {
		remove[k] = true
	}
	out := make([]corev1.EnvVar, 0, len(env)+len(kv.Set))
	for _, e := range env {
		if !remove[e.Name] {
			out = append(out, e)
		}
	}
	for _, s := range kv.Set {
		found := false
		for i := range out {
			if out[i].Name == s.Key {
				out[i] = corev1.EnvVar{Name: s.Key, Value: s.Value}
				found = true
			}
		}
		if !found {
			out = append(out, corev1.EnvVar{Name: s.Key, Value: s.Value})
		}
	}
	return out
}

// ValidateScale checks --scale-min and --scale-max against each other.
func ValidateScale(minScale, maxScale *int) error {
	if minScale != nil && *minScale < 0 {
		return fmt.Errorf("--scale-min %d: must be 0 or more", *minScale)
	}
	if maxScale != nil && *maxScale < 0 {
		return fmt.Errorf("--scale-max %d: must be 0 or more (0 means no limit)", *maxScale)
	}
	if minScale != nil && maxScale != nil && *maxScale != 0 && *minScale > *maxScale {
		return fmt.Errorf("--scale-min %d is above --scale-max %d", *minScale, *maxScale)
	}
	return nil
}
