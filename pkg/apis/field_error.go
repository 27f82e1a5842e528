package apis

import (
	"fmt"
	"sort"
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
// if given, explain the rule.
func ErrInvalidValue(value any, fieldPath string, details ...string) *FieldError {
	return &FieldError{
		Message: fmt.Sprintf("invalid value: %v", value),
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
func (fe *FieldError) ViaField(prefix ...string) *FieldError {
	if fe == nil {
		return nil
	}
	out := fe.clone()
	for i := len(prefix) - 1; i >= 0; i-- {
		out.prefix(prefix[i])
	}
	return out
}

// ViaIndex prefixes every path with the list index: "image" becomes "[2].image".
// Follow it with ViaField to name the list.
func (fe *FieldError) ViaIndex(index int) *FieldError {
	return fe.ViaField("[" + strconv.Itoa(index) + "]")
}

// ViaKey prefixes every path with the map key: "x" becomes "[key].x".
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

// Also returns the union of fe and errs. Nil errors are ignored; the result is
// nil when every input is nil.
func (fe *FieldError) Also(errs ...*FieldError) *FieldError {
	var leaves []FieldError
	leaves = append(leaves, fe.flatten()...)
	for _, e := range errs {
		leaves = append(leaves, e.flatten()...)
	}
	if len(leaves) == 0 {
		return nil
	}
	if len(leaves) == 1 {
		l := leaves[0]
		return &l
	}
	return &FieldError{errors: leaves}
}

// WrappedErrors returns the individual failures held by fe, merged and sorted
// as Error prints them.
func (fe *FieldError) WrappedErrors() []*FieldError {
	merged := merge(fe.flatten())
	out := make([]*FieldError, len(merged))
	for i := range merged {
		out[i] = &merged[i]
	}
	return out
}

// Error prints one failure per line, sorted, each as
// "<paths>: <message>[: <details>]". Failures with the same message and
// details share a line and list all their paths.
func (fe *FieldError) Error() string {
	if fe == nil {
		return ""
	}
	merged := merge(fe.flatten())
	lines := make([]string, 0, len(merged))
	for _, e := range merged {
		lines = append(lines, e.line())
	}
	return strings.Join(lines, "\n")
}

func (fe *FieldError) line() string {
	var b strings.Builder
	paths := strings.Join(fe.Paths, ", ")
	if paths != "" {
		b.WriteString(paths)
		b.WriteString(": ")
	}
	b.WriteString(fe.Message)
	if fe.Details != "" {
		b.WriteString(": ")
		b.WriteString(fe.Details)
	}
	return b.String()
}

// clone deep-copies the error so that Via* never mutates an error a caller
// still holds.
func (fe *FieldError) clone() *FieldError {
	out := &FieldError{Message: fe.Message, Details: fe.Details}
	out.Paths = append([]string(nil), fe.Paths...)
	for _, c := range fe.errors {
		out.errors = append(out.errors, *c.clone())
	}
	return out
}

func (fe *FieldError) prefix(p string) {
	for i, path := range fe.Paths {
		fe.Paths[i] = joinPath(p, path)
	}
	for i := range fe.errors {
		fe.errors[i].prefix(p)
	}
}

func joinPath(prefix, path string) string {
	switch {
	case path == CurrentField:
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	default:
		return prefix + "." + path
	}
}

// flatten returns the leaf failures of fe, without composites.
func (fe *FieldError) flatten() []FieldError {
	if fe == nil {
		return nil
	}
	if len(fe.errors) == 0 {
		if fe.Message == "" && len(fe.Paths) == 0 {
			return nil
		}
		return []FieldError{{Message: fe.Message, Paths: append([]string(nil), fe.Paths...), Details: fe.Details}}
	}
	var out []FieldError
	for i := range fe.errors {
		out = append(out, fe.errors[i].flatten()...)
	}
	return out
}

// merge joins failures with the same message and details, dedups and sorts
// their paths, and sorts the result by paths then message so output is
// deterministic regardless of the order validators ran in.
func merge(leaves []FieldError) []FieldError {
	type key struct{ msg, details string }
	index := map[key]int{}
	var out []FieldError
	for _, l := range leaves {
		k := key{l.Message, l.Details}
		if i, ok := index[k]; ok {
			out[i].Paths = append(out[i].Paths, l.Paths...)
			continue
		}
		index[k] = len(out)
		out = append(out, FieldError{Message: l.Message, Details: l.Details, Paths: append([]string(nil), l.Paths...)})
	}
	for i := range out {
		out[i].Paths = dedupSorted(out[i].Paths)
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := strings.Join(out[i].Paths, ", "), strings.Join(out[j].Paths, ", ")
		if pi != pj {
			return pi < pj
		}
		if out[i].Message != out[j].Message {
			return out[i].Message < out[j].Message
		}
		return out[i].Details < out[j].Details
	})
	return out
}

func dedupSorted(paths []string) []string {
	sort.Strings(paths)
	out := paths[:0]
	for i, p := range paths {
		if i > 0 && p == paths[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}
