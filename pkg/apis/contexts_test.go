package apis

import (
	"context"
	"testing"
)

func TestContexts(t *testing.T) {
	ctx := context.Background()
	if IsInCreate(ctx) || IsInUpdate(ctx) || GetBaseline(ctx) != nil {
		t.Fatal("a bare context is neither create nor update")
	}
	c := WithinCreate(ctx)
	if !IsInCreate(c) || IsInUpdate(c) {
		t.Error("WithinCreate")
	}
	base := &struct{ N int }{1}
	u := WithinUpdate(c, base)
	if IsInCreate(u) || !IsInUpdate(u) || GetBaseline(u) != base {
		t.Error("WithinUpdate")
	}
	if !IsInCreate(WithinCreate(u)) || IsInUpdate(WithinCreate(u)) {
		t.Error("WithinCreate must replace an update")
	}
}
