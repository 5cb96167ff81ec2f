package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// restRequest is Convoy's event body. data is kept as the raw bytes the
// client sent, so that it is delivered byte for byte.
type restRequest struct {
	EndpointID     string            `json:"endpoint_id"`
	OwnerID        string            `json:"owner_id"`
	EventType      string            `json:"event_type"`
	Data           json.RawMessage   `json:"data"`
	CustomHeaders  map[string]string `json:"custom_headers"`
	IdempotencyKey string            `json:"idempotency_key"`
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
		req, err := parseRESTBody(body)
		if err != nil {
			writeError(w, err)
			return
		}
		in := newEvent{
			projectID: r.PathValue("project_id"), eventType: req.EventType, data: req.Data,
			customHeaders: req.CustomHeaders, idempotencyKey: req.IdempotencyKey,
			broadcast: isBroadcast(r.Header),
		}
		switch shape {
		case shapeSingle:
			in.endpointID = req.EndpointID
		case shapeFanout:
			in.ownerID = req.OwnerID
			if in.ownerID == "" && !in.broadcast {
				if err := auth.AuthorizeProject(ctx, in.projectID); err != nil {
					writeError(w, err)
					return
				}
				writeError(w, apierr.Invalid("owner_id", "must not be empty for a fan-out event"))
				return
			}
		case shapeBroadcast:
			in.broadcast = true
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
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		// data is written raw so that the answer shows it as it was sent.
		out := struct {
			ID             string            `json:"id"`
			ProjectID      string            `json:"project_id"`
			EventType      string            `json:"event_type"`
			EndpointID     string            `json:"endpoint_id,omitempty"`
			OwnerID        string            `json:"owner_id,omitempty"`
			Broadcast      bool              `json:"broadcast"`
			IdempotencyKey string            `json:"idempotency_key,omitempty"`
			IsDuplicate    bool              `json:"is_duplicate"`
			DuplicateOf    string            `json:"duplicate_of,omitempty"`
			CustomHeaders  map[string]string `json:"custom_headers,omitempty"`
			Data           json.RawMessage   `json:"data"`
			CreateTime     string            `json:"create_time"`
		}{ev.Id, ev.ProjectId, ev.EventType, ev.EndpointId, ev.OwnerId, ev.Broadcast, ev.IdempotencyKey,
			ev.IsDuplicate, ev.DuplicateOf, ev.CustomHeaders, json.RawMessage(ev.Data), ev.CreateTime.AsTime().Format("2006-01-02T15:04:05.000Z07:00")}
		_ = json.NewEncoder(w).Encode(out)
	})
}

// parseRESTBody decodes a REST event body, keeping data's exact bytes.
func parseRESTBody(body []byte) (*restRequest, error) {
	var req restRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, apierr.Invalid("body", "is not a valid JSON object: %v", err)
	}
	if dec.More() {
		return nil, apierr.Invalid("body", "has data after the JSON object")
	}
	return &req, nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("body: larger than %d bytes", limit))
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code.String(), "message": msg})
}
