package apis

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Clock tells the time; ConditionSet uses it to stamp lastTransitionTime so
// tests can make the stamps exact.
//
// +kubebuilder:object:generate=false
type Clock interface {
	Now() time.Time
}

// +kubebuilder:object:generate=false
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// ConditionSet names a happy condition and the dependent conditions that
// decide it: the happy condition is True when every dependent is True, False
// as soon as one dependent is False, and Unknown otherwise.
//
// +kubebuilder:object:generate=false
type ConditionSet struct {
	happy      ConditionType
	dependents []ConditionType
	clock      Clock
}

// NewLivingConditionSet returns the set whose happy condition is Ready,
// decided by the given dependents. Long-running objects (Service, Revision…)
// use it.
func NewLivingConditionSet(dependents ...ConditionType) ConditionSet {
	return ConditionSet{happy: ConditionReady, dependents: append([]ConditionType(nil), dependents...)}
}

// WithClock returns a copy of cs that stamps transitions with c's time.
func (cs ConditionSet) WithClock(c Clock) ConditionSet {
	cs.clock = c
	return cs
}

// Happy returns the happy condition's type.
func (cs ConditionSet) Happy() ConditionType { return cs.happy }

// Dependents returns the dependent condition types.
func (cs ConditionSet) Dependents() []ConditionType {
	return append([]ConditionType(nil), cs.dependents...)
}

// Manage returns a manager of s's conditions under this set.
func (cs ConditionSet) Manage(s *Status) ConditionManager {
	return ConditionManager{set: cs, status: s}
}

// ConditionManager changes the conditions of one Status.
//
// +kubebuilder:object:generate=false
type ConditionManager struct {
	set    ConditionSet
	status *Status
}

func (m ConditionManager) now() metav1.Time {
	c := m.set.clock
	if c == nil {
		c = realClock{}
	}
	return metav1.NewTime(c.Now().UTC().Truncate(time.Second))
}

func (m ConditionManager) isDependent(t ConditionType) bool {
	for _, d := range m.set.dependents {
		if d == t {
			return true
		}
	}
	return false
}

func (m ConditionManager) severity(t ConditionType) ConditionSeverity {
	if t == m.set.happy || m.isDependent(t) {
		return ConditionSeverityError
	}
	return ConditionSeverityInfo
}

// GetCondition returns the condition of type t, or nil.
func (m ConditionManager) GetCondition(t ConditionType) *Condition {
	return m.status.GetCondition(t)
}

// GetTopLevelCondition returns the happy condition.
func (m ConditionManager) GetTopLevelCondition() *Condition {
	return m.GetCondition(m.set.happy)
}

// IsHappy reports whether the happy condition is True.
func (m ConditionManager) IsHappy() bool {
	return m.GetTopLevelCondition().IsTrue()
}

// SetCondition stores c, replacing a condition of the same type. When the
// stored condition already says the same thing, it is left alone, so its
// lastTransitionTime keeps marking the real transition.
func (m ConditionManager) SetCondition(c Condition) {
	if m.status == nil {
		return
	}
	var out Conditions
	for _, existing := range m.status.Conditions {
		if existing.Type != c.Type {
			out = append(out, existing)
			continue
		}
		if existing.Status == c.Status && existing.Reason == c.Reason &&
			existing.Message == c.Message && existing.Severity == c.Severity {
			return
		}
	}
	if c.LastTransitionTime.IsZero() {
		c.LastTransitionTime = m.now()
	}
	out = append(out, c)
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	m.status.Conditions = out
}

// ClearCondition removes the condition of type t. The happy condition and
// its dependents cannot be cleared.
func (m ConditionManager) ClearCondition(t ConditionType) {
	if m.status == nil || t == m.set.happy || m.isDependent(t) {
		return
	}
	var out Conditions
	for _, c := range m.status.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	m.status.Conditions = out
}

// MarkTrue sets t to True; when every dependent is then True, so is the
// happy condition.
func (m ConditionManager) MarkTrue(t ConditionType) {
	m.MarkTrueWithReason(t, "", "")
}

// MarkTrueWithReason is MarkTrue with a reason and message.
func (m ConditionManager) MarkTrueWithReason(t ConditionType, reason, messageFormat string, args ...any) {
	m.SetCondition(Condition{
		Type:     t,
		Status:   corev1.ConditionTrue,
		Reason:   reason,
		Message:  format(messageFormat, args...),
		Severity: m.severity(t),
	})
	if t == m.set.happy {
		return
	}
	for _, d := range m.set.dependents {
		if !m.GetCondition(d).IsTrue() {
			return
		}
	}
	m.SetCondition(Condition{Type: m.set.happy, Status: corev1.ConditionTrue, Severity: m.severity(m.set.happy)})
}

// MarkFalse sets t to False; a False dependent makes the happy condition
// False with the same reason and message.
func (m ConditionManager) MarkFalse(t ConditionType, reason, messageFormat string, args ...any) {
	msg := format(messageFormat, args...)
	m.SetCondition(Condition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, Severity: m.severity(t)})
	if m.isDependent(t) {
		m.SetCondition(Condition{Type: m.set.happy, Status: corev1.ConditionFalse, Reason: reason, Message: msg, Severity: m.severity(m.set.happy)})
	}
}

// MarkUnknown sets t to Unknown. The happy condition becomes Unknown with the
// same reason and message, unless another dependent is False: a known
// failure outranks an unknown.
func (m ConditionManager) MarkUnknown(t ConditionType, reason, messageFormat string, args ...any) {
	msg := format(messageFormat, args...)
	m.SetCondition(Condition{Type: t, Status: corev1.ConditionUnknown, Reason: reason, Message: msg, Severity: m.severity(t)})
	if !m.isDependent(t) {
		return
	}
	for _, d := range m.set.dependents {
		if d != t && m.GetCondition(d).IsFalse() {
			return
		}
	}
	m.SetCondition(Condition{Type: m.set.happy, Status: corev1.ConditionUnknown, Reason: reason, Message: msg, Severity: m.severity(m.set.happy)})
}

// InitializeConditions sets the happy condition and every dependent that is
// not yet present to Unknown. A happy condition that is already True makes
// missing dependents True too.
func (m ConditionManager) InitializeConditions() {
	if m.status == nil {
		return
	}
	happy := m.GetTopLevelCondition()
	if happy == nil {
		m.SetCondition(Condition{Type: m.set.happy, Status: corev1.ConditionUnknown, Severity: m.severity(m.set.happy)})
		happy = m.GetTopLevelCondition()
	}
	status := corev1.ConditionUnknown
	if happy.IsTrue() {
		status = corev1.ConditionTrue
	}
	for _, d := range m.set.dependents {
		if m.GetCondition(d) == nil {
			m.SetCondition(Condition{Type: d, Status: status, Severity: m.severity(d)})
		}
	}
}

func format(f string, args ...any) string {
	if len(args) == 0 {
		return f
	}
	return fmt.Sprintf(f, args...)
}
