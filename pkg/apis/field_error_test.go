package apis

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFieldErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  *FieldError
		want string
	}{{
		name: "nil",
		err:  nil,
		want: "",
	}, {
		name: "generic via field",
		err:  ErrGeneric("traffic targets sum to 90, want 100", "traffic").ViaField("spec"),
		want: "spec.traffic: traffic targets sum to 90, want 100",
	}, {
		name: "index then field",
		err:  ErrGeneric("must be between 0 and 100", "percent").ViaFieldIndex("traffic", 1).ViaField("spec"),
		want: "spec.traffic[1].percent: must be between 0 and 100",
	}, {
		name: "current field",
		err:  ErrMissingField(CurrentField).ViaField("spec", "template"),
		want: "spec.template: missing field(s)",
	}, {
		name: "key",
		err:  ErrInvalidValue("x", CurrentField, "must be a number").ViaKey("a/b").ViaField("metadata", "annotations"),
		want: "metadata.annotations[a/b]: invalid value: x: must be a number",
	}, {
		name: "field key",
		err:  ErrMissingField("x").ViaFieldKey("m", "k"),
		want: "m[k].x: missing field(s)",
	}, {
		name: "out of bounds",
		err:  ErrOutOfBoundsValue(1200, 0, 1000, "containerConcurrency"),
		want: "containerConcurrency: expected 0 <= 1200 <= 1000",
	}, {
		name: "multiple one of",
		err:  ErrMultipleOneOf("revisionName", "configurationName"),
		want: "configurationName, revisionName: expected exactly one, got both",
	}, {
		name: "missing one of",
		err:  ErrMissingOneOf("b", "a"),
		want: "a, b: expected exactly one, got neither",
	}, {
		name: "disallowed, merged and sorted",
		err:  ErrDisallowedFields("nodeSelector").Also(ErrDisallowedFields("affinity")).ViaField("spec"),
		want: "spec.affinity, spec.nodeSelector: must not set the field(s)",
	}, {
		name: "several sorted one per line",
		err: ErrMissingField("z").Also(nil, ErrGeneric("bad", "a"), ErrGeneric("worse", "a"),
			ErrDisallowedUpdateDeprecatedFields("m")),
		want: "a: bad\na: worse\nm: must not update deprecated field(s)\nz: missing field(s)",
	}, {
		name: "duplicates collapse",
		err:  ErrMissingField("a").Also(ErrMissingField("a")),
		want: "a: missing field(s)",
	}, {
		name: "all nil",
		err:  (*FieldError)(nil).Also(nil, nil),
		want: "",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.err.Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldErrorNilSafety(t *testing.T) {
	var fe *FieldError
	if fe.ViaField("a") != nil || fe.ViaIndex(1) != nil || fe.ViaKey("k") != nil || fe.Also() != nil {
		t.Error("methods on a nil *FieldError must return nil")
	}
	if fe.WrappedErrors() != nil && len(fe.WrappedErrors()) != 0 {
		t.Error("WrappedErrors of nil must be empty")
	}
}

func TestFieldErrorViaDoesNotMutate(t *testing.T) {
	base := ErrMissingField("x")
	_ = base.ViaField("a")
	_ = base.Also(ErrMissingField("y")).ViaField("b")
	if got, want := base.Error(), "x: missing field(s)"; got != want {
		t.Errorf("base changed to %q, want %q", got, want)
	}
}

func TestFieldErrorWrapped(t *testing.T) {
	err := ErrGeneric("one", "b").Also(ErrGeneric("two", "a")).ViaField("spec")
	var got []string
	for _, e := range err.WrappedErrors() {
		got = append(got, e.Error())
	}
	want := []string{"spec.a: two", "spec.b: one"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WrappedErrors (-want +got):\n%s", diff)
	}
}
