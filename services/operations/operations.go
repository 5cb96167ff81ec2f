// Package operations serves OperationsService: what an operator does with
// the messages the broker holds, such as listing and replaying the parking
// queue.
package operations

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	operationsv1 "github.com/hookmesh/hookmesh/gen/hookmesh/operations/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/operations/v1/operationsv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/bus"
)

// Parking is the parking queue (bus.Conn).
type Parking interface {
	ListParked(ctx context.Context, limit int) ([]bus.ParkedMessage, int, error)
	Replay(ctx context.Context, ids []string, all bool) (int, []string, error)
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Register mounts the service on mux and returns its name.
func Register(mux *http.ServeMux, parking Parking, opts ...connect.HandlerOption) []string {
	path, h := operationsv1connect.NewOperationsServiceHandler(&handler{parking: parking}, opts...)
	mux.Handle(path, h)
	return []string{operationsv1connect.OperationsServiceName}
}

type handler struct {
	parking Parking
}

func (h *handler) ListParkedMessages(ctx context.Context, req *connect.Request[operationsv1.ListParkedMessagesRequest]) (*connect.Response[operationsv1.ListParkedMessagesResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	limit := int(req.Msg.GetLimit())
	switch {
	case limit == 0:
		limit = defaultLimit
	case limit > maxLimit:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("limit: %d is more than %d", limit, maxLimit))
	}
	ms, total, err := h.parking.ListParked(ctx, limit)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	out := &operationsv1.ListParkedMessagesResponse{Total: uint32(total)}
	for _, m := range ms {
		pm := &operationsv1.ParkedMessage{
			Id: m.ID, Reason: m.Reason, ParkedFrom: m.From, Type: m.Type, MessageId: m.MessageID,
			Body: m.Body, BodyJson: bodyJSON(m.Type, m.Body), Headers: map[string]string{},
		}
		if !m.ParkTime.IsZero() {
			pm.ParkTime = timestamppb.New(m.ParkTime)
		}
		for k, v := range m.Headers {
			pm.Headers[k] = headerText(v)
		}
		out.Messages = append(out.Messages, pm)
	}
	return connect.NewResponse(out), nil
}

func (h *handler) ReplayParkedMessages(ctx context.Context, req *connect.Request[operationsv1.ReplayParkedMessagesRequest]) (*connect.Response[operationsv1.ReplayParkedMessagesResponse], error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	ids, all := req.Msg.GetIds(), req.Msg.GetAll()
	switch {
	case all && len(ids) > 0:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("ids and all: give one of them, not both"))
	case !all && len(ids) == 0:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("ids: name the messages to replay, or set all"))
	}
	n, missing, err := h.parking.Replay(ctx, ids, all)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("%w (replayed %d before that)", err, n))
	}
	return connect.NewResponse(&operationsv1.ReplayParkedMessagesResponse{Replayed: uint32(n), NotFound: missing}), nil
}

// bodyJSON renders a hookmesh bus message as JSON; "" for anything else.
func bodyJSON(typ string, body []byte) string {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return ""
	}
	m := mt.New().Interface()
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, m); err != nil {
		return ""
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

func headerText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(t)
	}
}
