package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

func TestEventQueries(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			r := newRouted(t, s)
			r.endpoint(t, "a1", "alice")
			r.endpoint(t, "a2", "alice")
			r.endpoint(t, "b1", "bob")
			ctx := context.Background()
			before := time.Now().Add(-time.Second)
			fan, err := r.c.ingest.CreateFanoutEvent(ctx, connect.NewRequest(&ingestv1.CreateFanoutEventRequest{ProjectId: r.projectID, OwnerId: "alice", EventType: "order.paid", Data: `{}`, IdempotencyKey: "k-1"}))
			if err != nil {
				t.Fatal(err)
			}
			single, err := r.c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: r.projectID, EndpointId: r.endpoints["b1"].GetId(), EventType: "user.created", Data: `{}`}))
			if err != nil {
				t.Fatal(err)
			}
			dup, err := r.c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: r.projectID, EndpointId: r.endpoints["b1"].GetId(), EventType: "order.paid", Data: `{}`, IdempotencyKey: "k-1"}))
			if err != nil || !dup.Msg.GetEvent().GetIsDuplicate() {
				t.Fatalf("duplicate: %v %v", dup, err)
			}
			fanID, singleID, dupID := fan.Msg.GetEvent().GetId(), single.Msg.GetEvent().GetId(), dup.Msg.GetEvent().GetId()
			r.deliveredTo(t, fanID, 2)
			r.deliveredTo(t, singleID, 1)

			got, err := r.c.ingest.GetEvent(ctx, connect.NewRequest(&ingestv1.GetEventRequest{ProjectId: r.projectID, EventId: fanID}))
			if err != nil {
				t.Fatal(err)
			}
			want := &statusv1.EventSummary{EventId: fanID, Total: 2, Counts: []*statusv1.StatusCount{{Status: statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, Count: 2}}}
			if !proto.Equal(got.Msg.GetEvent().GetDeliveries(), want) {
				t.Fatalf("deliveries of the fan-out event = %v, want %v", got.Msg.GetEvent().GetDeliveries(), want)
			}

			yes, no := true, false
			list := func(req *ingestv1.ListEventsRequest) []string {
				t.Helper()
				req.ProjectId = r.projectID
				resp, err := r.c.ingest.ListEvents(ctx, connect.NewRequest(req))
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, ev := range resp.Msg.GetEvents() {
					ids = append(ids, ev.GetId())
					if ev.GetDeliveries() == nil {
						t.Errorf("event %s listed without its delivery counts", ev.GetId())
					}
				}
				return ids
			}
			for name, tc := range map[string]struct {
				req  *ingestv1.ListEventsRequest
				want []string
			}{
				"all, newest first": {&ingestv1.ListEventsRequest{}, []string{dupID, singleID, fanID}},
				"event type":        {&ingestv1.ListEventsRequest{EventType: "order.paid"}, []string{dupID, fanID}},
				"endpoint":          {&ingestv1.ListEventsRequest{EndpointId: r.endpoints["b1"].GetId()}, []string{dupID, singleID}},
				"owner":             {&ingestv1.ListEventsRequest{OwnerId: "alice"}, []string{fanID}},
				"idempotency key":   {&ingestv1.ListEventsRequest{IdempotencyKey: "k-1"}, []string{dupID, fanID}},
				"duplicates":        {&ingestv1.ListEventsRequest{IsDuplicate: &yes}, []string{dupID}},
				"originals":         {&ingestv1.ListEventsRequest{IsDuplicate: &no}, []string{singleID, fanID}},
				"time range":        {&ingestv1.ListEventsRequest{StartTime: timestamppb.New(before), EndTime: timestamppb.New(before.Add(time.Hour))}, []string{dupID, singleID, fanID}},
				"empty time range":  {&ingestv1.ListEventsRequest{EndTime: timestamppb.New(before)}, nil},
			} {
				if got := list(tc.req); fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("%s: %v, want %v", name, got, tc.want)
				}
			}
		})
	}
}

// TestEventPaginationUnderInserts pages through events while more are
// inserted: no event is repeated and none that existed is skipped.
func TestEventPaginationUnderInserts(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	r := newRouted(t, s)
	r.endpoint(t, "ep", "")
	ctx := context.Background()
	send := func(i int) string {
		resp, err := r.c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: r.projectID, EndpointId: r.endpoints["ep"].GetId(), EventType: "page", Data: fmt.Sprintf(`{"i":%d}`, i)}))
		if err != nil {
			t.Error(err)
			return ""
		}
		return resp.Msg.GetEvent().GetId()
	}
	existing := map[string]bool{}
	for i := range 30 {
		existing[send(i)] = true
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 100; ; i++ {
			select {
			case <-stop:
				return
			default:
				send(i)
			}
		}
	})
	seen := map[string]bool{}
	var last string
	token := ""
	for {
		resp, err := r.c.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: r.projectID, PageSize: 7, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Msg.GetEvents() {
			if seen[ev.GetId()] {
				t.Fatalf("event %s listed twice", ev.GetId())
			}
			if last != "" && ev.GetId() >= last {
				t.Fatalf("events out of order: %s after %s", ev.GetId(), last)
			}
			seen[ev.GetId()], last = true, ev.GetId()
		}
		token = resp.Msg.GetNextPageToken()
		if token == "" {
			break
		}
	}
	close(stop)
	wg.Wait()
	for id := range existing {
		if !seen[id] {
			t.Fatalf("event %s, which existed before paging, was skipped", id)
		}
	}
	if _, err := r.c.ingest.ListEvents(ctx, connect.NewRequest(&ingestv1.ListEventsRequest{ProjectId: r.projectID, PageToken: "not-a-token"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad page token: %v", err)
	}
}
