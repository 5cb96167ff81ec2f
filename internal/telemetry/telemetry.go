// Package telemetry sets up OpenTelemetry tracing and metrics and a slog
// handler that stamps every line logged inside a span with its trace and
// span ids.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says what to export.
type Config struct {
	// ServiceName names the process in traces and metrics.
	ServiceName string
	// ExportTraces exports spans with the exporter the standard OTEL_*
	// variables choose (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*). When
	// false (and without SpanProcessors) spans carry only their ids: they
	// are still made and propagated, so trace ids reach the logs and the
	// webhook's traceparent, but nothing about them is recorded.
	ExportTraces bool
	// SpanProcessors are added to the tracer provider (tests add an
	// in-memory exporter here).
	SpanProcessors []sdktrace.SpanProcessor
}

// Telemetry holds the providers every component is built with.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Metrics serves the Prometheus exposition format.
	Metrics http.Handler

	shutdown []func(context.Context) error
}

// Setup builds the providers.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName))
	var tp trace.TracerProvider = idTracerProvider{}
	var shutdown []func(context.Context) error
	if cfg.ExportTraces || len(cfg.SpanProcessors) > 0 {
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if cfg.ExportTraces {
			exp, err := autoexport.NewSpanExporter(ctx)
			if err != nil {
				return nil, fmt.Errorf("create span exporter: %w", err)
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		for _, sp := range cfg.SpanProcessors {
			opts = append(opts, sdktrace.WithSpanProcessor(sp))
		}
		sdk := sdktrace.NewTracerProvider(opts...)
		tp, shutdown = sdk, append(shutdown, sdk.Shutdown)
	}

	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("create prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExp), sdkmetric.WithResource(res))

	return &Telemetry{
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		shutdown:       append(shutdown, mp.Shutdown),
	}, nil
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
