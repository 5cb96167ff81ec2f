package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/strictjson"
)

// restRequest is the union of Convoy's event bodies. data is kept as the
// raw bytes the client sent, so that it is delivered byte for byte.
type restRequest struct {
	EndpointID     string            `json:"endpoint_id"`
	OwnerID        string            `json:"owner_id"`
	EventType      string            `json:"event_type"`
	Data           json.RawMessage   `json:"data"`
	CustomHeaders  map[string]string `json:"custom_headers"`
	IdempotencyKey string            `json:"idempotency_key"`
	OrderingKey    string            `json:"ordering_key"`
}

// restFields are the fields of each route's body, as Convoy documents them:
// those hookmesh uses, then those it accepts and ignores on purpose
// (Convoy's deprecated app_id, and the acknowledged_at of its broadcast
// body). Any other field is refused, so that a misspelt one (the Connect
// spelling "idempotencyKey") is not silently dropped.
var restFields = map[restShape]struct{ used, ignored []string }{
	shapeSingle:    {used: []string{"endpoint_id", "event_type", "data", "custom_headers", "idempotency_key", "ordering_key"}, ignored: []string{"app_id"}},
	shapeFanout:    {used: []string{"owner_id", "event_type", "data", "custom_headers", "idempotency_key", "ordering_key"}},
	shapeBroadcast: {used: []string{"event_type", "data", "custom_headers", "idempotency_key", "ordering_key"}, ignored: []string{"acknowledged_at"}},
}

type restShape int

const (
	shapeSingle restShape = iota
	shapeFanout
	shapeBroadcast
)

func (s *Service) registerREST(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	mux.Handle("POST /api/v1/projects/{project_id}/events", wrap(s.restHandler(shapeSingle)))
	mux.Handle("POST /api/v1/projects/{project_id}/events/fanout", wrap(s.restHandler(shapeFanout)))
	mux.Handle("POST /api/v1/projects/{project_id}/events/broadcast", wrap(s.restHandler(shapeBroadcast)))
}

// restEnvelopeBytes is what a request body may hold beyond the payload.
const restEnvelopeBytes = 64 << 10

func (s *Service) restHandler(shape restShape) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.keys.Principal(r)
		if err != nil {
			writeError(w, err)
			return
		}
		ctx := auth.WithPrincipal(r.Context(), p)
		body, err := readBody(w, r, int64(s.cfg.MaxPayloadBytes)+restEnvelopeBytes)
		if err != nil {
			writeError(w, err)
			return
		}
		req, err := parseRESTBody(shape, body)
		if err != nil {
			writeError(w, err)
			return
		}
		in, err := bodyEvent(ctx, shape, r.PathValue("project_id"), req, isBroadcast(r.Header))
		if err != nil {
			writeError(w, err)
			return
		}
		ev, err := s.create(ctx, in)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				err = apierr.Internal(ctx, s.logger, r.URL.Path, err)
			}
			writeError(w, err)
			return
		}
		msg := restMessages[shape]
		if ev.GetIsDuplicate() {
			msg = restDuplicateMessage
		}
		writeJSON(w, http.StatusCreated, restAnswer{Status: true, Message: msg, Data: newRESTEvent(ev)})
	})
}

// bodyEvent turns a decoded body of the given shape into the event to
// create in a project; broadcast is the x-convoy-message-type header's
// say. REST routes and AMQP sources share it, so that a body means the same
// through both.
func bodyEvent(ctx context.Context, shape restShape, projectID string, req *restRequest, broadcast bool) (newEvent, error) {
	in := newEvent{
		projectID: projectID, eventType: req.EventType, data: req.Data,
		customHeaders: req.CustomHeaders, idempotencyKey: req.IdempotencyKey,
		broadcast: broadcast, orderingKey: req.OrderingKey,
	}
	switch shape {
	case shapeSingle:
		in.endpointID = req.EndpointID
	case shapeFanout:
		in.ownerID = req.OwnerID
		if in.ownerID == "" && !in.broadcast {
			if err := auth.AuthorizeProject(ctx, in.projectID); err != nil {
				return in, err
			}
			return in, apierr.Invalid("owner_id", "must not be empty for a fan-out event")
		}
	case shapeBroadcast:
		in.broadcast = true
	}
	return in, nil
}

// Convoy's messages for a created event.
var restMessages = map[restShape]string{
	shapeSingle:    "Endpoint event created successfully",
	shapeFanout:    "Endpoint fanout event created successfully",
	shapeBroadcast: "Broadcast event created successfully",
}

// restDuplicateMessage is Convoy's answer to an event whose idempotency key
// was used before: stored, marked as a duplicate, never delivered.
const restDuplicateMessage = "Duplicate event received, but will not be sent"

// restAnswer is Convoy's envelope, for answers and errors alike.
type restAnswer struct {
	Status  bool   `json:"status"`
	Message string `json:"message"`
	// Code is hookmesh's error code (a Connect code), beside Convoy's fields.
	Code string     `json:"code,omitempty"`
	Data *restEvent `json:"data,omitempty"`
}

// restEvent is an event under Convoy's field names (uid, endpoints,
// is_duplicate_event, headers, created_at, ...) and hookmesh's own (id,
// endpoint_id, owner_id, broadcast, is_duplicate, duplicate_of,
// custom_headers, create_time, and ordering_key and ordering_seq for an
// event in a line).
type restEvent struct {
	UID              string              `json:"uid"`
	ProjectID        string              `json:"project_id"`
	EventType        string              `json:"event_type"`
	Endpoints        []string            `json:"endpoints"`
	IdempotencyKey   string              `json:"idempotency_key"`
	IsDuplicateEvent bool                `json:"is_duplicate_event"`
	Headers          map[string][]string `json:"headers"`
	// Data is written from the event's text, so that its numbers keep every
	// digit (encoding/json only compacts it).
	Data           json.RawMessage `json:"data"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	AcknowledgedAt time.Time       `json:"acknowledged_at"`

	ID            string            `json:"id"`
	EndpointID    string            `json:"endpoint_id,omitempty"`
	OwnerID       string            `json:"owner_id,omitempty"`
	Broadcast     bool              `json:"broadcast"`
	IsDuplicate   bool              `json:"is_duplicate"`
	DuplicateOf   string            `json:"duplicate_of,omitempty"`
	CustomHeaders map[string]string `json:"custom_headers,omitempty"`
	CreateTime    string            `json:"create_time"`
	OrderingKey   string            `json:"ordering_key,omitempty"`
	OrderingSeq   uint64            `json:"ordering_seq,omitempty"`
}

func newRESTEvent(ev *ingestv1.Event) *restEvent {
	created := ev.GetCreateTime().AsTime()
	out := &restEvent{
		UID: ev.GetId(), ProjectID: ev.GetProjectId(), EventType: ev.GetEventType(),
		Endpoints: []string{}, IdempotencyKey: ev.GetIdempotencyKey(), IsDuplicateEvent: ev.GetIsDuplicate(),
		Headers: make(map[string][]string, len(ev.GetCustomHeaders())), Data: json.RawMessage(ev.GetData()),
		CreatedAt: created, UpdatedAt: created, AcknowledgedAt: created,
		ID: ev.GetId(), EndpointID: ev.GetEndpointId(), OwnerID: ev.GetOwnerId(), Broadcast: ev.GetBroadcast(),
		IsDuplicate: ev.GetIsDuplicate(), DuplicateOf: ev.GetDuplicateOf(), CustomHeaders: ev.GetCustomHeaders(),
		CreateTime:  created.Format("2006-01-02T15:04:05.000Z07:00"),
		OrderingKey: ev.GetOrderingKey(), OrderingSeq: ev.GetOrderingSeq(),
	}
	// The endpoints of a fan-out or broadcast are found later, by the router.
	if ev.GetEndpointId() != "" && !ev.GetBroadcast() {
		out.Endpoints = []string{ev.GetEndpointId()}
	}
	for k, v := range ev.GetCustomHeaders() {
		out.Headers[k] = []string{v}
	}
	return out
}

// parseRESTBody decodes the body of a route, keeping data's exact bytes,
// and refuses a field the route does not take, naming the closest one.
func parseRESTBody(shape restShape, body []byte) (*restRequest, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, apierr.Invalid("body", "is not a valid JSON object: %v", err)
	}
	if fields == nil {
		return nil, apierr.Invalid("body", "is not a valid JSON object: got null")
	}
	if dec.More() {
		return nil, apierr.Invalid("body", "has data after the JSON object")
	}
	known := restFields[shape]
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(known.used, k) && !slices.Contains(known.ignored, k) {
			return nil, connect.NewError(connect.CodeInvalidArgument, strictjson.UnknownField(k, "", slices.Concat(known.used, known.ignored)))
		}
	}
	var req restRequest
	for name, dst := range map[string]any{
		"endpoint_id": &req.EndpointID, "owner_id": &req.OwnerID, "event_type": &req.EventType,
		"custom_headers": &req.CustomHeaders, "idempotency_key": &req.IdempotencyKey, "ordering_key": &req.OrderingKey,
	} {
		if raw, ok := fields[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) {
					return nil, apierr.Invalid(name, "must be %s, got a JSON %s", restFieldKinds[name], te.Value)
				}
				return nil, apierr.Invalid(name, "%v", err)
			}
		}
	}
	req.Data = fields["data"]
	return &req, nil
}

// restFieldKinds says what each field must hold, for errors.
var restFieldKinds = map[string]string{
	"endpoint_id": "a string", "owner_id": "a string", "event_type": "a string",
	"custom_headers": "an object of strings", "idempotency_key": "a string", "ordering_key": "a string",
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("request body too large: at most %d bytes", limit))
	}
	if err != nil {
		return nil, apierr.Invalid("body", "could not be read: %v", err)
	}
	return buf.Bytes(), nil
}

// httpStatus maps Connect codes to HTTP statuses for the REST API.
var httpStatus = map[connect.Code]int{
	connect.CodeInvalidArgument:    http.StatusBadRequest,
	connect.CodeNotFound:           http.StatusNotFound,
	connect.CodeUnauthenticated:    http.StatusUnauthorized,
	connect.CodePermissionDenied:   http.StatusForbidden,
	connect.CodeResourceExhausted:  http.StatusRequestEntityTooLarge,
	connect.CodeFailedPrecondition: http.StatusConflict,
	connect.CodeUnavailable:        http.StatusServiceUnavailable,
	connect.CodeUnimplemented:      http.StatusNotImplemented,
	connect.CodeDeadlineExceeded:   http.StatusGatewayTimeout,
}

func writeError(w http.ResponseWriter, err error) {
	code := connect.CodeInternal
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		code, msg = ce.Code(), ce.Message()
	}
	status, ok := httpStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, restAnswer{Status: false, Message: msg, Code: code.String()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
