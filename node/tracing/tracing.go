// Package tracing sends a centre's OpenTelemetry traces to a collector
// over OTLP/HTTP: the tracer provider the node's query client and holder
// trace with (federation/query says what they record and how a query's
// spans at several centres meet in one trace). Each centre samples by
// trace ID, so that all centres decide alike for one query.
package tracing

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/medfed/medfed/node/centre"
)

// Provider is a tracer provider exporting to a collector; Shutdown sends
// what is left.
type Provider = sdktrace.TracerProvider

// New returns a provider that batches the spans of the centre named
// centreName, of the version given, to the configured endpoint, sampling
// cfg.SampleRatio of the traces by their ID.
func New(cfg centre.TracingConfig, centreName, version string) (*Provider, error) {
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint: %w", err)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("medfed"),
		semconv.ServiceVersion(version),
		semconv.ServiceInstanceID(centreName),
	)
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.TraceIDRatioBased(cfg.SampleRatio)),
	), nil
}
