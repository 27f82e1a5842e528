// Package tracing is Gantry's request tracing: W3C trace context carried from the gateway
// through the activator and the queue-proxy to the user container, with a span for each hop
// and for a cold start's wait, exported with OpenTelemetry over OTLP/HTTP.
//
// A nil *Tracer is tracing turned off: every method is then a no-op that allocates nothing,
// and the trace context a client sent passes through the proxies untouched with the other
// headers.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Tracer.
type Options struct {
	// Endpoint is the OTLP/HTTP collector's base URL (http://host:4318); spans go to
	// <Endpoint>/v1/traces.
	Endpoint string
	// Service is the service.name of the spans' resource (gantry, queue-proxy).
	Service string
	// SamplingRatio is the share of new traces recorded, in [0, 1]; a request that arrives
	// with a trace context follows its caller's decision.
	SamplingRatio float64
	// Attributes describe the process (the revision and pod of a queue-proxy).
	Attributes []attribute.KeyValue
}

// Tracer records spans and carries trace context across hops.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// ParseEndpoint checks an OTLP/HTTP endpoint: an http or https URL with a host and no path
// beyond "/".
func ParseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", s)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%q: give the collector's base URL; spans go to its /v1/traces", s)
	}
	return u, nil
}

// New returns a Tracer exporting to opts.Endpoint, or nil (tracing off) when it is empty.
// Spans are batched and sent in the background; Shutdown flushes them.
func New(opts Options) (*Tracer, error) {
	if opts.Endpoint == "" {
		return nil, nil
	}
	u, err := ParseEndpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	if opts.SamplingRatio < 0 || opts.SamplingRatio > 1 {
		return nil, fmt.Errorf("sampling ratio %v: must be between 0 and 1", opts.SamplingRatio)
	}
	httpOpts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(u.JoinPath("v1", "traces").String()),
		otlptracehttp.WithTimeout(10 * time.Second),
	}
	exp, err := otlptracehttp.New(context.Background(), httpOpts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	attrs := append([]attribute.KeyValue{attribute.String("service.name", opts.Service)}, opts.Attributes...)
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp,
			sdktrace.WithMaxQueueSize(2048),
			sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SamplingRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Tracer{
		provider: provider,
		tracer:   provider.Tracer("github.com/gantry-run/gantry"),
		prop:     propagation.TraceContext{},
	}, nil
}

// Start runs the tracer as a part of the server: until ctx ends, then it sends the spans
// still buffered (for at most 5 s).
func (t *Tracer) Start(ctx context.Context) error {
	<-ctx.Done()
	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return t.Shutdown(flush)
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Span is one recorded hop; the zero Span (tracing off) does nothing.
type Span struct {
	span trace.Span
}

// StartServer starts the span of a hop that received r: the child of the trace context r
// carries (its traceparent header), or of the span already in r's context, or a new trace.
// It returns r with the span in its context, for the hop's own children and for Inject.
func (t *Tracer) StartServer(r *http.Request, name string, attrs ...attribute.KeyValue) (*http.Request, Span) {
	if t == nil {
		return r, Span{}
	}
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(append(attrs,
			attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.Host),
			attribute.String("url.path", r.URL.Path))...))
	return r.WithContext(ctx), Span{span}
}

// StartSpan starts an internal span (a wait) under the span in ctx.
func (t *Tracer) StartSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	return ctx, Span{span}
}

// Inject writes the trace context of the span in ctx into h, as the traceparent (and
// tracestate) the next hop reads, replacing what the caller sent.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// SetAttributes adds attributes to the span.
func (s Span) SetAttributes(attrs ...attribute.KeyValue) {
	if s.span != nil {
		s.span.SetAttributes(attrs...)
	}
}

// End ends the span with the response's status: 5xx marks it failed.
func (s Span) End(status int) {
	if s.span == nil {
		return
	}
	if status != 0 {
		s.span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if status >= 500 {
		s.span.SetStatus(codes.Error, http.StatusText(status))
	}
	s.span.End()
}

// EndErr ends the span, marked failed when err is not nil.
func (s Span) EndErr(err error) {
	if s.span == nil {
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}

// Recording says whether the span records (tracing on and the trace sampled).
func (s Span) Recording() bool { return s.span != nil && s.span.IsRecording() }
