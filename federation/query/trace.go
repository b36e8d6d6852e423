package query

import (
	"context"
	"crypto/sha256"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

// A query is traced at both ends (OpenTelemetry): the requester's span
// "medfed.query" with one "medfed.query.ask" a holder, and each holder's
// "medfed.query.answer". They are linked through the request itself:
// both ends derive one parent span context from the request's nonce,
// which both hold, so that every span of a query falls in one trace
// without anything added to the signed request, and a sampler that
// decides by trace ID (TraceIDRatioBased) decides alike at every centre.
// The parent stands for the request and is never recorded itself.
//
// Attributes are member names, outcomes, counts, the purpose and error
// kinds: never the patient's pseudonym, a staff identifier, a reason
// given in words or a payload.

// tracerName names the instrumentation.
const tracerName = "github.com/medfed/medfed/federation/query"

// tracer returns tp's tracer for queries, or a no-op one.
func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// requestParent is the span context that stands for the request with
// this nonce at both ends. The nonce is random, so its hash says nothing
// of the patient or the people involved.
func requestParent(nonce [16]byte) trace.SpanContext {
	h := sha256.Sum256(append([]byte("medfed/query/v1 trace\x00"), nonce[:]...))
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID(h[:16]),
		SpanID:     trace.SpanID(h[16:24]),
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
}

// underRequest returns ctx with the request's parent span context, and
// the links the span started from it keeps: to the span ctx was in
// already (the API request that asked, say), if any.
func underRequest(ctx context.Context, nonce [16]byte) (context.Context, []trace.Link) {
	var links []trace.Link
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		links = append(links, trace.Link{SpanContext: sc})
	}
	return trace.ContextWithRemoteSpanContext(ctx, requestParent(nonce)), links
}

// memberName is a member's name in the charter in force, or "unknown".
func memberName(c federation.Charter, id peer.ID) string {
	if m, ok := c.Member(id); ok {
		return m.Name
	}
	return "unknown"
}

// endSpan ends span with its outcome, and err's kind as its status when
// it failed: the kind, not the message, which may name the patient.
func endSpan(span trace.Span, outcome string, err error) {
	span.SetAttributes(attribute.String("medfed.outcome", outcome))
	if err != nil {
		span.SetStatus(codes.Error, node.KindOf(err).String())
	}
	span.End()
}
