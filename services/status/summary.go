package status

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// maxSummarizedEvents bounds one SummarizeEvents call.
const maxSummarizedEvents = 500

// SummarizeEvents counts the deliveries of several events per status, for
// the event listings of the ingest service: one query for a page of events.
func (h *handler) SummarizeEvents(ctx context.Context, req *connect.Request[statusv1.SummarizeEventsRequest]) (*connect.Response[statusv1.SummarizeEventsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	if len(m.GetEventIds()) > maxSummarizedEvents {
		return nil, apierr.Invalid("event_ids", "has %d ids; at most %d are allowed", len(m.GetEventIds()), maxSummarizedEvents)
	}
	counts, err := h.store.countByEvent(ctx, m.GetProjectId(), m.GetEventIds())
	if err != nil {
		return nil, err
	}
	out := &statusv1.SummarizeEventsResponse{}
	for _, id := range m.GetEventIds() {
		sum := &statusv1.EventSummary{EventId: id}
		for _, st := range allStatuses {
			if n := counts[id][st]; n > 0 {
				sum.Counts = append(sum.Counts, &statusv1.StatusCount{Status: st, Count: n})
				sum.Total += n
			}
		}
		out.Summaries = append(out.Summaries, sum)
	}
	return connect.NewResponse(out), nil
}

// countByEvent counts deliveries per event and status. It reads only the two
// fields it needs and counts here, which every MongoDB-compatible server
// answers alike.
func (s *deliveryStore) countByEvent(ctx context.Context, projectID string, eventIDs []string) (map[string]map[statusv1.DeliveryStatus]uint64, error) {
	out := make(map[string]map[statusv1.DeliveryStatus]uint64, len(eventIDs))
	if len(eventIDs) == 0 {
		return out, nil
	}
	filter := bson.D{{Key: "project_id", Value: projectID}, {Key: "event_id", Value: bson.D{{Key: "$in", Value: eventIDs}}}}
	if len(eventIDs) == 1 {
		filter = bson.D{{Key: "project_id", Value: projectID}, {Key: "event_id", Value: eventIDs[0]}}
	}
	cur, err := s.deliveries.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "event_id", Value: 1}, {Key: "status", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("count deliveries by event: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var row struct {
			EventID string `bson:"event_id"`
			Status  int32  `bson:"status"`
		}
		if err := cur.Decode(&row); err != nil {
			return nil, fmt.Errorf("read delivery count: %w", err)
		}
		if out[row.EventID] == nil {
			out[row.EventID] = map[statusv1.DeliveryStatus]uint64{}
		}
		out[row.EventID][statusv1.DeliveryStatus(row.Status)]++
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("count deliveries by event: %w", err)
	}
	return out, nil
}
