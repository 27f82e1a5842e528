package autoscaling

import "time"

// GroupName is the prefix of every autoscaling annotation.
const GroupName = "autoscaling.knative.dev"

// Annotation keys.
const (
	ClassAnnotationKey                    = GroupName + "/class"
	MetricAnnotationKey                   = GroupName + "/metric"
	TargetAnnotationKey                   = GroupName + "/target"
	TargetUtilizationPercentageKey        = GroupName + "/target-utilization-percentage"
	TargetBurstCapacityKey                = GroupName + "/target-burst-capacity"
	WindowAnnotationKey                   = GroupName + "/window"
	PanicWindowPercentageAnnotationKey    = GroupName + "/panic-window-percentage"
	PanicThresholdPercentageAnnotationKey = GroupName + "/panic-threshold-percentage"
	MinScaleAnnotationKey                 = GroupName + "/min-scale"
	MaxScaleAnnotationKey                 = GroupName + "/max-scale"
	InitialScaleAnnotationKey             = GroupName + "/initial-scale"
	ScaleDownDelayAnnotationKey           = GroupName + "/scale-down-delay"
	ScaleToZeroPodRetentionPeriodKey      = GroupName + "/scale-to-zero-pod-retention-period"
	ActivationScaleKey                    = GroupName + "/activation-scale"
)

// Autoscaler classes.
const (
	KPA = "kpa.autoscaling.knative.dev"
	HPA = "hpa.autoscaling.knative.dev"
)

// Metrics.
const (
	Concurrency = "concurrency"
	RPS         = "rps"
	CPU         = "cpu"
	Memory      = "memory"
)

// Bounds the rules enforce.
const (
	// WindowMin and WindowMax bound the stable window.
	WindowMin = 6 * time.Second
	WindowMax = time.Hour
	// PanicThresholdPercentageMin and Max bound the panic threshold.
	PanicThresholdPercentageMin = 110.0
	PanicThresholdPercentageMax = 1000.0
	// PanicWindowPercentageMin and Max bound the panic window as a
	// percentage of the stable window.
	PanicWindowPercentageMin = 1.0
	PanicWindowPercentageMax = 100.0
	// TargetMin is the smallest target.
	TargetMin = 0.01
	// TargetUtilizationPercentageMin and Max bound the utilisation target.
	TargetUtilizationPercentageMin = 1.0
	TargetUtilizationPercentageMax = 100.0
	// TargetBurstCapacityUnlimited keeps the activator always in the path.
	TargetBurstCapacityUnlimited = -1.0
	// ScaleDownDelayMax bounds scale-down-delay.
	ScaleDownDelayMax = time.Hour
	// ScaleToZeroPodRetentionPeriodMax bounds the retention period.
	ScaleToZeroPodRetentionPeriodMax = time.Hour
)

// Annotation is one setting: its key and the older spellings accepted for it.
type Annotation struct {
	Key     string
	Aliases []string
}

// Keys returns the key followed by its aliases.
func (a Annotation) Keys() []string {
	return append([]string{a.Key}, a.Aliases...)
}

// Get returns the first of a's spellings present in m, and its value.
func (a Annotation) Get(m map[string]string) (key, value string, ok bool) {
	for _, k := range a.Keys() {
		if v, ok := m[k]; ok {
			return k, v, true
		}
	}
	return "", "", false
}

// The settings, with their aliases.
var (
	ClassAnnotation                         = Annotation{Key: ClassAnnotationKey}
	MetricAnnotation                        = Annotation{Key: MetricAnnotationKey}
	TargetAnnotation                        = Annotation{Key: TargetAnnotationKey}
	TargetUtilizationPercentageAnnotation   = Annotation{Key: TargetUtilizationPercentageKey, Aliases: []string{GroupName + "/targetUtilizationPercentage"}}
	TargetBurstCapacityAnnotation           = Annotation{Key: TargetBurstCapacityKey, Aliases: []string{GroupName + "/targetBurstCapacity"}}
	WindowAnnotation                        = Annotation{Key: WindowAnnotationKey}
	PanicWindowPercentageAnnotation         = Annotation{Key: PanicWindowPercentageAnnotationKey, Aliases: []string{GroupName + "/panicWindowPercentage"}}
	PanicThresholdPercentageAnnotation      = Annotation{Key: PanicThresholdPercentageAnnotationKey, Aliases: []string{GroupName + "/panicThresholdPercentage"}}
	MinScaleAnnotation                      = Annotation{Key: MinScaleAnnotationKey, Aliases: []string{GroupName + "/minScale"}}
	MaxScaleAnnotation                      = Annotation{Key: MaxScaleAnnotationKey, Aliases: []string{GroupName + "/maxScale"}}
	InitialScaleAnnotation                  = Annotation{Key: InitialScaleAnnotationKey, Aliases: []string{GroupName + "/initialScale"}}
	ScaleDownDelayAnnotation                = Annotation{Key: ScaleDownDelayAnnotationKey, Aliases: []string{GroupName + "/scaleDownDelay"}}
	ScaleToZeroPodRetentionPeriodAnnotation = Annotation{Key: ScaleToZeroPodRetentionPeriodKey}
	ActivationScaleAnnotation               = Annotation{Key: ActivationScaleKey}
)

// all lists every setting, for the one-spelling check.
var all = []Annotation{
	ClassAnnotation, MetricAnnotation, TargetAnnotation,
	TargetUtilizationPercentageAnnotation, TargetBurstCapacityAnnotation,
	WindowAnnotation, PanicWindowPercentageAnnotation, PanicThresholdPercentageAnnotation,
	MinScaleAnnotation, MaxScaleAnnotation, InitialScaleAnnotation,
	ScaleDownDelayAnnotation, ScaleToZeroPodRetentionPeriodAnnotation, ActivationScaleAnnotation,
}
