package integration

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	operationsv1 "github.com/hookmesh/hookmesh/gen/hookmesh/operations/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/operations/v1/operationsv1connect"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/mesh"
)

// A delivery task parked on purpose is listed with its reason and origin,
// replayed to the deliverers' queue, and then delivered once.
func TestParkedMessageListedAndReplayed(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	rcv := newReceiver(t)
	projectID, key := s.project(t, singleAttempt)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: rcv.URL, Description: "parking"})

	ctx := context.Background()
	eventID := parkTask(t, s, projectID, ep.GetId(), "pk_test_one", "parked by the test")
	deliveryID := ids.Deterministic("dlv", eventID, ep.GetId())
	deliverQueue := mesh.NewTopology(s.cfg.AMQPPrefix, s.cfg.StatusPartitions).DeliverQueue

	ops := func(key string) operationsv1connect.OperationsServiceClient {
		return operationsv1connect.NewOperationsServiceClient(http.DefaultClient, s.statusURL,
			connect.WithInterceptors(auth.BearerInterceptor(key)))
	}
	if _, err := ops(key).ListParkedMessages(ctx, connect.NewRequest(&operationsv1.ListParkedMessagesRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("a project key lists parked messages: %v", err)
	}
	list, err := ops(adminKey).ListParkedMessages(ctx, connect.NewRequest(&operationsv1.ListParkedMessagesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if list.Msg.GetTotal() != 1 || len(list.Msg.GetMessages()) != 1 {
		t.Fatalf("listed %d of %d parked messages, want 1 of 1", len(list.Msg.GetMessages()), list.Msg.GetTotal())
	}
	pm := list.Msg.GetMessages()[0]
	if pm.GetId() != "pk_test_one" || pm.GetReason() != "parked by the test" || pm.GetParkedFrom() != deliverQueue ||
		pm.GetType() != mesh.TypeTask || !strings.Contains(pm.GetBodyJson(), deliveryID) {
		t.Fatalf("parked message listed as %v", pm)
	}
	// Listing leaves it parked: nothing was delivered.
	time.Sleep(500 * time.Millisecond)
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("receiver got %d requests while the task was parked", n)
	}

	replay, err := ops(adminKey).ReplayParkedMessages(ctx, connect.NewRequest(&operationsv1.ReplayParkedMessagesRequest{Ids: []string{"pk_test_one", "pk_not_there"}}))
	if err != nil {
		t.Fatal(err)
	}
	if replay.Msg.GetReplayed() != 1 || !slices.Equal(replay.Msg.GetNotFound(), []string{"pk_not_there"}) {
		t.Fatalf("replay: %v", replay.Msg)
	}
	rcv.waitFor(t, "the replayed task", func(got []received) bool { return len(got) >= 1 })
	// Once: give a second copy time to arrive, then count.
	time.Sleep(2 * time.Second)
	if got := rcv.byEvent(eventID); len(got) != 1 {
		t.Fatalf("receiver got the replayed task %d times, want 1", len(got))
	}
	list, err = ops(adminKey).ListParkedMessages(ctx, connect.NewRequest(&operationsv1.ListParkedMessagesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.GetMessages()) != 0 {
		t.Fatalf("%d messages still parked after the replay", len(list.Msg.GetMessages()))
	}

	if _, err := ops(adminKey).ReplayParkedMessages(ctx, connect.NewRequest(&operationsv1.ReplayParkedMessagesRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("a replay naming nothing: %v", err)
	}
}
