package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parser reads the data of one ConfigMap key by key. Every malformed value and every key the
// ConfigMap does not have is collected as an error that names the key; keys starting with "_"
// (Knative's "_example") are documentation and ignored.
type parser struct {
	data map[string]string
	used map[string]bool
	errs []error
}

func newParser(data map[string]string) *parser {
	return &parser{data: data, used: map[string]bool{}}
}

// value returns the trimmed value of key, and whether it is set.
func (p *parser) value(key string) (string, bool) {
	p.used[key] = true
	v, ok := p.data[key]
	return strings.TrimSpace(v), ok
}

func (p *parser) failf(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *parser) int64(key string, dst *int64) {
	if v, ok := p.value(key); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			p.failf(key, "%q is not an integer", v)
			return
		}
		*dst = n
	}
}

func (p *parser) int32(key string, dst *int32) {
	if v, ok := p.value(key); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			p.failf(key, "%q is not an integer", v)
			return
		}
		*dst = int32(n)
	}
}

func (p *parser) float(key string, dst *float64) {
	if v, ok := p.value(key); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			p.failf(key, "%q is not a number", v)
			return
		}
		*dst = f
	}
}

func (p *parser) duration(key string, dst *time.Duration) {
	if v, ok := p.value(key); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.failf(key, "%q is not a duration (e.g. 30s, 1m)", v)
			return
		}
		*dst = d
	}
}

func (p *parser) bool(key string, dst *bool) {
	if v, ok := p.value(key); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.failf(key, "%q is not true or false", v)
			return
		}
		*dst = b
	}
}

func (p *parser) string(key string, dst *string) {
	if v, ok := p.value(key); ok && v != "" {
		*dst = v
	}
}

// only accepts key only when it is absent or one of allowed: Gantry knows the key but does
// not implement its other values, and says so rather than ignoring them.
func (p *parser) only(key string, allowed ...string) {
	if v, ok := p.value(key); ok && !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, v) }) {
		p.failf(key, "%q is not supported by Gantry (supported: %s)", v, strings.Join(allowed, ", "))
	}
}

// err is every problem found, unknown keys included, sorted by key.
func (p *parser) err() error {
	for k := range p.data {
		if !p.used[k] && !strings.HasPrefix(k, "_") {
			p.errs = append(p.errs, fmt.Errorf("%s: unknown key", k))
		}
	}
	slices.SortFunc(p.errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(p.errs...)
}
