package apis

import "context"

type createKey struct{}

type updateKey struct{}

type updateInfo struct {
	base any
}

// WithinCreate marks ctx as the admission of a new object.
func WithinCreate(ctx context.Context) context.Context {
	ctx = context.WithValue(ctx, updateKey{}, nil)
	return context.WithValue(ctx, createKey{}, struct{}{})
}

// IsInCreate reports whether ctx is the admission of a new object.
func IsInCreate(ctx context.Context) bool {
	return ctx.Value(createKey{}) != nil
}

// WithinUpdate marks ctx as the admission of an update whose previous
// version is base (a pointer to the same type as the object validated).
func WithinUpdate(ctx context.Context, base any) context.Context {
	ctx = context.WithValue(ctx, createKey{}, nil)
	return context.WithValue(ctx, updateKey{}, &updateInfo{base: base})
}

// IsInUpdate reports whether ctx is the admission of an update.
func IsInUpdate(ctx context.Context) bool {
	info, _ := ctx.Value(updateKey{}).(*updateInfo)
	return info != nil
}

// GetBaseline returns the previous version of the object under update, or
// nil outside an update.
func GetBaseline(ctx context.Context) any {
	info, _ := ctx.Value(updateKey{}).(*updateInfo)
	if info == nil {
		return nil
	}
	return info.base
}
