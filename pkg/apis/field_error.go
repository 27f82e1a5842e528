package apis

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CurrentField is the empty path: the error is about the field the caller is
// validating, and the caller's ViaField names it.
const CurrentField = ""

// FieldError is a validation failure that names the fields it is about. Errors
// compose: a nested validator returns errors relative to its own object, and
// the caller prefixes them with ViaField, ViaIndex or ViaKey, so the final
// message carries the full path (spec.template.spec.containers[0].image).
//
// Error renders exactly what knative.dev/pkg/apis.FieldError renders, since
// clients and tests written for Knative match on that text: one failure per
// line as "<message>: <path>, <path>", followed by the details on a line of
// their own when there are any.
//
// A nil *FieldError means "no error"; every method is nil-safe.
//
// +kubebuilder:object:generate=false
type FieldError struct {
	// Message says which rule failed.
	Message string
	// Paths are the fields the rule is about, relative to the object that
	// produced the error until callers prefix them.
	Paths []string
	// Details optionally says more about how to fix it.
	Details string

	// errors holds the failures an Also combined; a FieldError has either
	// errors or its own Message, Paths and Details, never both.
	errors []FieldError
}

var _ error = (*FieldError)(nil)

// ErrMissingField says that the named fields are required and not set.
func ErrMissingField(fieldPaths ...string) *FieldError {
	return &FieldError{Message: "missing field(s)", Paths: fieldPaths}
}

// ErrDisallowedFields says that the named fields must not be set.
func ErrDisallowedFields(fieldPaths ...string) *FieldError {
	return &FieldError{Message: "must not set the field(s)", Paths: fieldPaths}
}

// ErrDisallowedUpdateDeprecatedFields says that deprecated fields may not be
// changed on update.
func ErrDisallowedUpdateDeprecatedFields(fieldPaths ...string) *FieldError {
	return &FieldError{Message: "must not update deprecated field(s)", Paths: fieldPaths}
}

// ErrInvalidValue says that value is not acceptable for fieldPath. Details,
// if given, explain the rule; several are joined with ", ".
func ErrInvalidValue(value any, fieldPath string, details ...string) *FieldError {
	return &FieldError{
		Message: fmt.Sprintf("invalid value: %v", value),
		Paths:   []string{fieldPath},
		Details: strings.Join(details, ", "),
	}
}

// ErrInvalidArrayValue says that value, the element at index of the list
// field, is not acceptable: its path is field[index].
func ErrInvalidArrayValue(value any, field string, index int) *FieldError {
	return ErrInvalidValue(value, CurrentField).ViaFieldIndex(field, index)
}

// ErrInvalidKeyName says that key may not be used in the map at fieldPath.
// Details, if given, explain the rule; several are joined with ", ".
func ErrInvalidKeyName(key, fieldPath string, details ...string) *FieldError {
	return &FieldError{
		Message: fmt.Sprintf("invalid key name %q", key),
		Paths:   []string{fieldPath},
		Details: strings.Join(details, ", "),
	}
}

// ErrOutOfBoundsValue says that value lies outside [lower, upper].
func ErrOutOfBoundsValue(value, lower, upper any, fieldPath string) *FieldError {
	return &FieldError{
		Message: fmt.Sprintf("expected %v <= %v <= %v", lower, value, upper),
		Paths:   []string{fieldPath},
	}
}

// ErrMultipleOneOf says that at most one of the named fields may be set.
func ErrMultipleOneOf(fieldPaths ...string) *FieldError {
	return &FieldError{Message: "expected exactly one, got both", Paths: fieldPaths}
}

// ErrMissingOneOf says that exactly one of the named fields must be set and
// none is.
func ErrMissingOneOf(fieldPaths ...string) *FieldError {
	return &FieldError{Message: "expected exactly one, got neither", Paths: fieldPaths}
}

// ErrGeneric is a failure with a free-form message about the named fields.
func ErrGeneric(msg string, fieldPaths ...string) *FieldError {
	return &FieldError{Message: msg, Paths: fieldPaths}
}

// ViaField prefixes every path of the error with the given field names, in
// order: ViaField("spec", "template") turns "image" into "spec.template.image".
//
// Paths are composed as Knative composes them: every part is split at ".",
// empty parts (CurrentField) vanish, and a part written "[...]" attaches to the
// part before it, so "[2]" under "containers" reads "containers[2]". A
// bracketed part that itself contains a "." is not recognised as one, so
// ViaKey("a.b") under "m" reads "m.[a.b]", as it does in Knative.
func (fe *FieldError) ViaField(prefix ...string) *FieldError {
	if fe == nil {
		return nil
	}
	out := &FieldError{Message: fe.Message, Details: fe.Details}
	if fe.Paths != nil {
		out.Paths = make([]string, len(fe.Paths))
		for i, p := range fe.Paths {
			out.Paths[i] = joinPath(prefix, p)
		}
	}
	for i := range fe.errors {
		out.errors = append(out.errors, *fe.errors[i].ViaField(prefix...))
	}
	return out
}

// ViaIndex prefixes every path with the list index: "image" becomes "[2].image".
// Follow it with ViaField to name the list.
func (fe *FieldError) ViaIndex(index int) *FieldError {
	return fe.ViaField("[" + strconv.Itoa(index) + "]")
}

// ViaKey prefixes every path with the map key: "x" becomes "[key].x".
// Follow it with ViaField to name the map.
func (fe *FieldError) ViaKey(key string) *FieldError {
	return fe.ViaField("[" + key + "]")
}

// ViaFieldIndex is ViaIndex(index).ViaField(field).
func (fe *FieldError) ViaFieldIndex(field string, index int) *FieldError {
	return fe.ViaIndex(index).ViaField(field)
}

// ViaFieldKey is ViaKey(key).ViaField(field).
func (fe *FieldError) ViaFieldKey(field, key string) *FieldError {
	return fe.ViaKey(key).ViaField(field)
}

// Also returns the union of fe and errs. Nil and empty errors are ignored;
// the result is nil when there is nothing left.
func (fe *FieldError) Also(errs ...*FieldError) *FieldError {
	leaves := fe.leaves()
	for _, e := range errs {
		leaves = append(leaves, e.leaves()...)
	}
	switch len(leaves) {
	case 0:
		return nil
	case 1:
		return &leaves[0]
	default:
		return &FieldError{errors: leaves}
	}
}

// WrappedErrors returns the individual failures held by fe, merged and sorted
// as Error prints them.
func (fe *FieldError) WrappedErrors() []*FieldError {
	return merge(fe.leaves())
}

// Error renders the failures as knative.dev/pkg/apis.FieldError does.
// Failures with the same message and details are merged into one, listing
// the paths of all of them, sorted. Each failure reads
// "<message>: <paths joined by ", ">", and its details, if any, follow on
// the next line. Failures are sorted by message, then details, and separated
// by newlines. A failure without a message prints nothing; a nil or empty
// error prints "".
func (fe *FieldError) Error() string {
	merged := fe.WrappedErrors()
	var b strings.Builder
	for i, e := range merged {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Message)
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Paths, ", "))
		if e.Details != "" {
			b.WriteByte('\n')
			b.WriteString(e.Details)
		}
	}
	return b.String()
}

// joinPath composes prefix and path into one dotted path (see ViaField).
func joinPath(prefix []string, path string) string {
	var segs []string
	add := func(part string) {
		for _, s := range strings.Split(part, ".") {
			switch {
			case s == "":
			case len(segs) > 0 && isBracketed(s):
				segs[len(segs)-1] += s
			default:
				segs = append(segs, s)
			}
		}
	}
	for _, p := range prefix {
		add(p)
	}
	add(path)
	return strings.Join(segs, ".")
}

func isBracketed(s string) bool {
	return strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
}

func (fe *FieldError) isEmpty() bool {
	return fe.Message == "" && fe.Details == "" && len(fe.Paths) == 0 && len(fe.errors) == 0
}

// leaves returns copies of the non-empty single failures held by fe.
func (fe *FieldError) leaves() []FieldError {
	if fe == nil {
		return nil
	}
	if len(fe.errors) == 0 {
		if fe.isEmpty() {
			return nil
		}
		return []FieldError{{Message: fe.Message, Paths: slices.Clone(fe.Paths), Details: fe.Details}}
	}
	var out []FieldError
	for i := range fe.errors {
		out = append(out, fe.errors[i].leaves()...)
	}
	return out
}

// merge reproduces Knative's merging of failures. Failures without a message
// are dropped. Failures with the same message and details become one: the
// first keeps its paths as given, each later one adds the paths not listed
// yet. Each merged failure's paths are then sorted, and the failures are
// sorted by message, then details.
func merge(leaves []FieldError) []*FieldError {
	type key struct{ message, details string }
	byKey := make(map[key]*FieldError, len(leaves))
	out := make([]*FieldError, 0, len(leaves))
	for _, l := range leaves {
		if l.Message == "" {
			continue
		}
		k := key{l.Message, l.Details}
		m, ok := byKey[k]
		if !ok {
			m = &FieldError{Message: l.Message, Details: l.Details, Paths: slices.Clone(l.Paths)}
			byKey[k] = m
			out = append(out, m)
			continue
		}
		for _, p := range l.Paths {
			if !slices.Contains(m.Paths, p) {
				m.Paths = append(m.Paths, p)
			}
		}
	}
	for _, m := range out {
		slices.Sort(m.Paths)
	}
	slices.SortFunc(out, func(a, b *FieldError) int {
		if c := strings.Compare(a.Message, b.Message); c != 0 {
			return c
		}
		return strings.Compare(a.Details, b.Details)
	})
	return out
}
