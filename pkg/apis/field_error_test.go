package apis

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The expected strings are what knative.dev/pkg/apis.FieldError prints for
// the same calls: "<message>: <paths>", details on the next line, failures
// merged when message and details are equal, sorted by message then details.
func TestFieldErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  *FieldError
		want string
	}{
		// Nothing to say.
		{name: "nil", err: nil, want: ""},
		{name: "empty", err: &FieldError{}, want: ""},
		{name: "paths without a message print nothing", err: &FieldError{Paths: []string{"a"}}, want: ""},

		// Each constructor.
		{name: "missing field", err: ErrMissingField("name"), want: "missing field(s): name"},
		{name: "missing fields sorted", err: ErrMissingField("b", "a"), want: "missing field(s): a, b"},
		{name: "no path leaves the colon", err: ErrMissingField(), want: "missing field(s): "},
		{name: "current field alone", err: ErrMissingField(CurrentField), want: "missing field(s): "},
		{
			name: "disallowed fields",
			err:  ErrDisallowedFields("nodeSelector", "affinity"),
			want: "must not set the field(s): affinity, nodeSelector",
		}, {
			name: "disallowed update of deprecated fields",
			err:  ErrDisallowedUpdateDeprecatedFields("generation"),
			want: "must not update deprecated field(s): generation",
		},
		{name: "invalid value", err: ErrInvalidValue(-1, "replicas"), want: "invalid value: -1: replicas"},
		{name: "invalid nil value", err: ErrInvalidValue(nil, "v"), want: "invalid value: <nil>: v"},
		{
			name: "invalid value with details on the next line",
			err:  ErrInvalidValue("x", "port", "must be a number", "between 1 and 65535"),
			want: "invalid value: x: port\nmust be a number, between 1 and 65535",
		},
		{name: "invalid array value", err: ErrInvalidArrayValue("SYS_ADMIN", "add", 1), want: "invalid value: SYS_ADMIN: add[1]"},
		{
			name: "invalid key name",
			err:  ErrInvalidKeyName("autoscaling.knative.dev/target", "metadata.annotations", "put it on the template"),
			want: "invalid key name \"autoscaling.knative.dev/target\": metadata.annotations\nput it on the template",
		}, {
			name: "out of bounds",
			err:  ErrOutOfBoundsValue(1200, 0, 1000, "containerConcurrency"),
			want: "expected 0 <= 1200 <= 1000: containerConcurrency",
		}, {
			name: "out of bounds durations",
			err:  ErrOutOfBoundsValue(2*time.Hour, 6*time.Second, time.Hour, "window"),
			want: "expected 6s <= 2h0m0s <= 1h0m0s: window",
		}, {
			name: "multiple one of",
			err:  ErrMultipleOneOf("revisionName", "configurationName"),
			want: "expected exactly one, got both: configurationName, revisionName",
		}, {
			name: "missing one of",
			err:  ErrMissingOneOf("name", "generateName"),
			want: "expected exactly one, got neither: generateName, name",
		}, {
			name: "generic",
			err:  ErrGeneric("traffic targets sum to 90, want 100", "traffic"),
			want: "traffic targets sum to 90, want 100: traffic",
		},
		{name: "generic without a path", err: ErrGeneric("no paths"), want: "no paths: "},
		{name: "details without a path", err: &FieldError{Message: "m", Details: "d"}, want: "m: \nd"},

		// Paths.
		{
			name: "current field named by the caller",
			err:  ErrMissingField(CurrentField).ViaField("spec", "template"),
			want: "missing field(s): spec.template",
		}, {
			name: "nested via calls",
			err:  ErrMissingField("image").ViaFieldIndex("containers", 0).ViaField("spec").ViaField("template").ViaField("spec"),
			want: "missing field(s): spec.template.spec.containers[0].image",
		}, {
			name: "index without a field stays in front",
			err:  ErrMissingField("name").ViaIndex(2),
			want: "missing field(s): [2].name",
		}, {
			name: "field then index",
			err:  ErrMissingField("bar").ViaField("foo").ViaIndex(0),
			want: "missing field(s): [0].foo.bar",
		}, {
			name: "index of an index",
			err:  ErrMissingField("x").ViaIndex(0).ViaIndex(1).ViaField("m"),
			want: "missing field(s): m[1][0].x",
		}, {
			name: "index of the current field",
			err:  ErrInvalidValue("-x", CurrentField).ViaFieldIndex("args", 3),
			want: "invalid value: -x: args[3]",
		}, {
			name: "key",
			err:  ErrMissingField("x").ViaKey("k").ViaField("m"),
			want: "missing field(s): m[k].x",
		}, {
			name: "field key",
			err:  ErrMissingField("x").ViaFieldKey("m", "k"),
			want: "missing field(s): m[k].x",
		}, {
			name: "empty key",
			err:  ErrMissingField(CurrentField).ViaKey("").ViaField("m"),
			want: "missing field(s): m[]",
		}, {
			name: "key with dots does not attach",
			err:  ErrInvalidValue("x", CurrentField).ViaKey("autoscaling.knative.dev/window").ViaField("annotations").ViaField("metadata"),
			want: "invalid value: x: metadata.annotations.[autoscaling.knative.dev/window]",
		}, {
			name: "dotted path under a field",
			err:  ErrGeneric("bad", "autoscaling.knative.dev/window").ViaField("annotations"),
			want: "bad: annotations.autoscaling.knative.dev/window",
		}, {
			name: "bracketed path attaches to the field",
			err:  ErrMissingField("[0]", "[1].name").ViaField("args"),
			want: "missing field(s): args[0], args[1].name",
		}, {
			name: "via drops empty parts",
			err:  ErrMissingField("a..b", ".c").ViaField(""),
			want: "missing field(s): a.b, c",
		}, {
			name: "constructors keep paths as given",
			err:  ErrMissingField("a..b"),
			want: "missing field(s): a..b",
		}, {
			name: "via applies to every failure of a composite",
			err:  ErrMissingField("image").Also(ErrInvalidValue(-1, "port")).ViaIndex(0).ViaField("containers"),
			want: "invalid value: -1: containers[0].port\nmissing field(s): containers[0].image",
		},

		// Several failures.
		{
			name: "sorted by message, one per line",
			err:  ErrMissingField("z").Also(ErrGeneric("worse", "a"), nil, ErrGeneric("bad", "b")),
			want: "bad: b\nmissing field(s): z\nworse: a",
		}, {
			name: "sorted bytewise",
			err:  ErrGeneric("b", "x").Also(ErrGeneric("B", "y")),
			want: "B: y\nb: x",
		}, {
			name: "paths sorted bytewise",
			err:  ErrMissingField("b", "B", "a[1]", "a.c"),
			want: "missing field(s): B, a.c, a[1], b",
		}, {
			name: "equal messages merged",
			err:  ErrDisallowedFields("nodeSelector").Also(ErrDisallowedFields("affinity")).ViaField("spec"),
			want: "must not set the field(s): spec.affinity, spec.nodeSelector",
		}, {
			name: "equal messages and details merged, details once",
			err:  ErrInvalidValue(0, "b", "must be positive").Also(ErrInvalidValue(0, "a", "must be positive")),
			want: "invalid value: 0: a, b\nmust be positive",
		}, {
			name: "equal messages with different details sorted by details",
			err:  ErrInvalidValue("x", "a", "second").Also(ErrInvalidValue("x", "b", "first")),
			want: "invalid value: x: b\nfirst\ninvalid value: x: a\nsecond",
		}, {
			name: "details between failures",
			err:  ErrGeneric("a rule", "x").Also(ErrInvalidValue(3, "y", "why"), ErrMissingField("z")),
			want: "a rule: x\ninvalid value: 3: y\nwhy\nmissing field(s): z",
		}, {
			name: "a path repeated by a later failure is listed once",
			err:  ErrMissingField("a").Also(ErrMissingField("a", "b"), ErrMissingField("b")),
			want: "missing field(s): a, b",
		}, {
			// Knative keeps the first failure's paths as given and only
			// drops the repeats that later failures bring.
			name: "a path repeated within the first failure is kept",
			err:  ErrMissingField("a", "a").Also(ErrMissingField("b")),
			want: "missing field(s): a, a, b",
		}, {
			name: "a path repeated within a later failure is dropped",
			err:  ErrMissingField("b").Also(ErrMissingField("a", "a")),
			want: "missing field(s): a, b",
		}, {
			name: "message-less failures skipped among others",
			err:  ErrMissingField("a").Also(&FieldError{Paths: []string{"b"}}),
			want: "missing field(s): a",
		},
		{name: "all nil", err: (*FieldError)(nil).Also(nil, nil), want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.err.Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldErrorAlsoOrderDoesNotMatter(t *testing.T) {
	a := ErrMissingField("image").ViaFieldIndex("containers", 1)
	b := ErrInvalidValue(-1, "port", "must be positive").ViaFieldIndex("containers", 0)
	c := ErrMissingField("name").ViaFieldIndex("containers", 0)
	want := a.Also(b, c).Error()
	for _, got := range []string{c.Also(b, a).Error(), b.Also(a).Also(c).Error(), (*FieldError)(nil).Also(c, a, b).Error()} {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Error() depends on the order of Also (-want +got):\n%s", diff)
		}
	}
}

func TestFieldErrorNilSafety(t *testing.T) {
	var fe *FieldError
	if fe.ViaField("a") != nil || fe.ViaIndex(1) != nil || fe.ViaKey("k") != nil ||
		fe.ViaFieldIndex("a", 1) != nil || fe.ViaFieldKey("a", "k") != nil || fe.Also() != nil {
		t.Error("methods on a nil *FieldError must return nil")
	}
	if len(fe.WrappedErrors()) != 0 {
		t.Error("WrappedErrors of nil must be empty")
	}
	if got := (&FieldError{}).Also(nil, &FieldError{}); got != nil {
		t.Errorf("Also of empty errors = %#v, want nil", got)
	}
}

func TestFieldErrorViaDoesNotMutate(t *testing.T) {
	base := ErrMissingField("x")
	_ = base.ViaField("a")
	_ = base.Also(ErrMissingField("y")).ViaField("b")
	if got, want := base.Error(), "missing field(s): x"; got != want {
		t.Errorf("base changed to %q, want %q", got, want)
	}
	unsorted := ErrMultipleOneOf("b", "a")
	_ = unsorted.Error()
	if diff := cmp.Diff([]string{"b", "a"}, unsorted.Paths); diff != "" {
		t.Errorf("Error() changed Paths (-want +got):\n%s", diff)
	}
}

func TestFieldErrorWrapped(t *testing.T) {
	err := ErrGeneric("two", "a").Also(ErrGeneric("one", "b"), ErrGeneric("two", "c", "a")).ViaField("spec")
	var got []string
	for _, e := range err.WrappedErrors() {
		got = append(got, e.Error())
	}
	want := []string{"one: spec.b", "two: spec.a, spec.c"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WrappedErrors (-want +got):\n%s", diff)
	}
}
