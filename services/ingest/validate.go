package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/metaevent"
)

const (
	maxEventTypeLen      = 255
	maxIdempotencyKeyLen = 255
	maxCustomHeaders     = 50
	maxHeaderValueLen    = 4096
	maxOrderingKeyLen    = 256
)

// reservedHeaders may not be set through an event's custom headers: they
// would break the HTTP exchange or forge hookmesh's own headers.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "transfer-encoding": true,
	"connection": true, "upgrade": true, "te": true, "trailer": true, "keep-alive": true,
	"traceparent": true, "tracestate": true, "user-agent": true,
}

// validate checks in before it is stored: the caller may write to the
// project, every field is well formed, and the event has a target (an
// existing endpoint, an owner, or every endpoint for a broadcast).
func (s *Service) validate(ctx context.Context, in *newEvent) error {
	if err := auth.AuthorizeProject(ctx, in.projectID); err != nil {
		return err
	}
	if err := validateEventType(in.eventType); err != nil {
		return err
	}
	if err := s.validateData(in.data); err != nil {
		return err
	}
	if len(in.idempotencyKey) > maxIdempotencyKeyLen || !printable(in.idempotencyKey) {
		return apierr.Invalid("idempotency_key", "must be printable UTF-8 of at most %d bytes", maxIdempotencyKeyLen)
	}
	if err := validateHeaders(in.customHeaders); err != nil {
		return err
	}
	if err := s.validateOrderingKey(in.orderingKey); err != nil {
		return err
	}
	return s.validateTarget(ctx, in)
}

// validateOrderingKey checks that an ordering key, when set, is printable
// text of at most maxOrderingKeyLen bytes, and that the store can number
// its events.
func (s *Service) validateOrderingKey(key string) error {
	if key == "" {
		return nil
	}
	if len(key) > maxOrderingKeyLen {
		return apierr.Invalid("ordering_key", "is %d bytes; at most %d are allowed", len(key), maxOrderingKeyLen)
	}
	if !utf8.ValidString(key) {
		return apierr.Invalid("ordering_key", "must be valid UTF-8")
	}
	for i, r := range key {
		if unicode.IsControl(r) {
			return apierr.Invalid("ordering_key", "must not contain control characters (found %U at byte %d)", r, i)
		}
	}
	if !s.store.orders() {
		return apierr.FailedPrecondition("ordering_key needs the PostgreSQL history store (HOOKMESH_POSTGRES_URL); this deployment keeps events in MongoDB")
	}
	return nil
}

// validateEventType checks that an event type is set and printable.
func validateEventType(eventType string) error {
	if eventType == "" {
		return apierr.Invalid("event_type", "must not be empty")
	}
	if len(eventType) > maxEventTypeLen || !printable(eventType) {
		return apierr.Invalid("event_type", "must be printable UTF-8 of at most %d bytes", maxEventTypeLen)
	}
	return nil
}

// validateData checks that a payload is UTF-8 JSON within the size limit.
func (s *Service) validateData(data []byte) error {
	if len(data) == 0 {
		return apierr.Invalid("data", "must not be empty: send the payload as JSON")
	}
	if len(data) > s.cfg.MaxPayloadBytes {
		return apierr.Invalid("data", "is %d bytes; the limit is %d bytes", len(data), s.cfg.MaxPayloadBytes)
	}
	if !utf8.Valid(data) {
		return apierr.Invalid("data", "must be UTF-8 JSON")
	}
	if !json.Valid(data) {
		return apierr.Invalid("data", "is not valid JSON: %s", jsonError(data))
	}
	return nil
}

// validateTarget checks that in names a target: a broadcast (which drops
// endpoint_id and owner_id), an existing endpoint other than the meta
// endpoint, or an owner.
func (s *Service) validateTarget(ctx context.Context, in *newEvent) error {
	switch {
	case in.broadcast:
		in.endpointID, in.ownerID = "", ""
	case in.endpointID != "":
		if metaevent.IsEndpoint(in.projectID, in.endpointID) {
			// Only hookmesh sends meta events, so that a receiver can trust
			// what its signature covers.
			return apierr.Invalid("endpoint_id", "%q is the project's meta endpoint, which receives only the meta events hookmesh sends", in.endpointID)
		}
		ok, err := s.endpoints.EndpointExists(ctx, in.projectID, in.endpointID)
		if err != nil {
			return err
		}
		if !ok {
			return apierr.NotFound("endpoint", in.endpointID, in.projectID)
		}
	case in.ownerID != "":
	default:
		return apierr.Invalid("endpoint_id", "must not be empty (or use owner_id for a fan-out event, or a broadcast)")
	}
	return nil
}

// printable reports whether s is UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func jsonError(data []byte) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err.Error()
	}
	return "unexpected input"
}

func validateHeaders(h map[string]string) error {
	if len(h) > maxCustomHeaders {
		return apierr.Invalid("custom_headers", "has %d headers; at most %d are allowed", len(h), maxCustomHeaders)
	}
	for name, value := range h {
		field := fmt.Sprintf("custom_headers[%q]", name)
		if !httpguts.ValidHeaderFieldName(name) {
			return apierr.Invalid(field, "is not a valid HTTP header name")
		}
		lower := strings.ToLower(name)
		if reservedHeaders[lower] || strings.HasPrefix(lower, "proxy-") || strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "x-hookmesh-") {
			return apierr.Invalid(field, "is set by hookmesh and cannot be overridden")
		}
		if !httpguts.ValidHeaderFieldValue(value) || len(value) > maxHeaderValueLen {
			return apierr.Invalid(field, "value must be at most %d bytes without control characters (CR, LF, NUL)", maxHeaderValueLen)
		}
	}
	return nil
}
