package hpa

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// DefaultCPUTarget is the CPU utilisation, in percent of the pods' requests, an HPA of
// metric cpu aims at without a target annotation (Kubernetes' and Knative's 80).
const DefaultCPUTarget = 80

// MakeHPA is the HorizontalPodAutoscaler pa asks for under the configuration as: on pa's
// scale target, between min-scale (at least 1) and max-scale (unbounded: MaxInt32), on the
// metric annotation (cpu when unset):
//   - cpu: average utilisation of the pods' CPU requests, target percent (default 80);
//   - memory: average working set per pod, target MiB; without a target the HPA has no
//     metric and Kubernetes' default, 80 % CPU, applies, as in Knative;
//   - any other name: a Pods metric of that name with an average of target per pod, for a
//     custom metrics API to serve.
//
// It fails on an annotation that does not parse (the webhook refuses those).
func MakeHPA(pa *pav1alpha1.PodAutoscaler, as *config.Autoscaler) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	minScale, err := intAnnotation(pa, autoscaling.MinScaleAnnotation, as.MinScale)
	if err != nil {
		return nil, err
	}
	maxScale, err := intAnnotation(pa, autoscaling.MaxScaleAnnotation, as.MaxScale)
	if err != nil {
		return nil, err
	}
	minScale = max(minScale, 1)
	if maxScale == 0 {
		maxScale = math.MaxInt32
	}
	maxScale = max(maxScale, minScale)

	metric := autoscaling.CPU
	if _, v, ok := autoscaling.MetricAnnotation.Get(pa.Annotations); ok && strings.TrimSpace(v) != "" {
		metric = strings.TrimSpace(v)
	}
	target, hasTarget, err := floatAnnotation(pa, autoscaling.TargetAnnotation)
	if err != nil {
		return nil, err
	}
	var metrics []autoscalingv2.MetricSpec
	switch metric {
	case autoscaling.CPU:
		percent := int32(DefaultCPUTarget)
		if hasTarget {
			percent = int32(math.Ceil(target))
		}
		metrics = []autoscalingv2.MetricSpec{resourceMetric(corev1.ResourceCPU, autoscalingv2.MetricTarget{
			Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(percent),
		})}
	case autoscaling.Memory:
		if hasTarget {
			mib := resource.NewQuantity(int64(math.Ceil(target))*1024*1024, resource.BinarySI)
			metrics = []autoscalingv2.MetricSpec{resourceMetric(corev1.ResourceMemory, autoscalingv2.MetricTarget{
				Type: autoscalingv2.AverageValueMetricType, AverageValue: mib,
			})}
		}
	default:
		if hasTarget {
			metrics = []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: metric},
					Target: autoscalingv2.MetricTarget{
						Type:         autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewMilliQuantity(int64(math.Ceil(target*1000)), resource.DecimalSI),
					},
				},
			}}
		}
	}
	ref := pa.Spec.ScaleTargetRef
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name:            pa.Name,
			Namespace:       pa.Namespace,
			Labels:          kmeta.UnionMaps(pa.Labels),
			Annotations:     kmeta.UnionMaps(pa.Annotations),
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(pa, pa.GetGroupVersionKind())},
		},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name},
			MinReplicas:    ptr.To(minScale),
			MaxReplicas:    maxScale,
			Metrics:        metrics,
		},
	}, nil
}

func resourceMetric(name corev1.ResourceName, target autoscalingv2.MetricTarget) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type:     autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{Name: name, Target: target},
	}
}

// intAnnotation is a non-negative int32 annotation of pa, def when absent.
func intAnnotation(pa *pav1alpha1.PodAutoscaler, a autoscaling.Annotation, def int32) (int32, error) {
	k, v, ok := a.Get(pa.Annotations)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("annotation %s: %q is not a non-negative integer", k, v)
	}
	return int32(n), nil
}

// floatAnnotation is a positive number annotation of pa; ok is false when it is absent.
func floatAnnotation(pa *pav1alpha1.PodAutoscaler, a autoscaling.Annotation) (float64, bool, error) {
	k, v, ok := a.Get(pa.Annotations)
	if !ok {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false, fmt.Errorf("annotation %s: %q is not a positive number", k, v)
	}
	return f, true, nil
}

// specMatches reports whether a stored HPA spec is what MakeHPA built, allowing for the API
// server's defaults: the scaling behavior, and the 80 % CPU metric of an HPA built with none.
func specMatches(cur, want autoscalingv2.HorizontalPodAutoscalerSpec) bool {
	return equality.Semantic.DeepEqual(cur.ScaleTargetRef, want.ScaleTargetRef) &&
		equality.Semantic.DeepEqual(cur.MinReplicas, want.MinReplicas) &&
		cur.MaxReplicas == want.MaxReplicas &&
		(len(want.Metrics) == 0 || equality.Semantic.DeepEqual(cur.Metrics, want.Metrics))
}
