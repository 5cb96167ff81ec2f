package integration

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/app"
	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestOutboxPublishesWhatWasStoredButNotConfirmed stores an event the way
// ingest does but, as if the process died before the broker confirmed it,
// with no publish marker: the sweeper publishes it, it is delivered once,
// and it is not published again.
func TestOutboxPublishesWhatWasStoredButNotConfirmed(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	const eventID = "evt_06h22zzzzzzzzzzzzzzzzzzzzz"
	// Stamped just past the sweeper's grace (5 s in tests), as an event
	// whose request died a moment ago.
	st := openIngestStore(t, s)
	st.insertUnconfirmed(t, storedEvent{id: eventID, projectID: projectID, eventType: "orphan",
		data: []byte(`{"stored":"not published"}`), endpointID: ep.GetId(), createTime: time.Now().UTC().Add(-6 * time.Second)})
	got := recv.waitFor(t, "the swept event", func(r []received) bool { return len(r) == 1 })[0]
	if string(got.body) != `{"stored":"not published"}` || got.header.Get("X-Hookmesh-Event-Id") != eventID {
		t.Fatalf("received %s %v", got.body, got.header)
	}
	// Several sweeps later, nothing more.
	time.Sleep(5 * s.cfg.Ingest.SweepInterval)
	if n := len(recv.requests()); n != 1 {
		t.Fatalf("the swept event was delivered %d times", n)
	}
	if !st.confirmed(t, eventID) {
		t.Fatal("the swept event is not marked as published")
	}
}

// TestRepeatedKeyAfterACrash repeats an idempotency key the way a client
// does after ingest died mid-request, with the sweeper out of the way:
// a duplicate is only acknowledged once its original exists, an abandoned
// claim is taken over under the claimed id, and an original stored but
// never confirmed is published by the repeat.
func TestRepeatedKeyAfterACrash(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{configure: func(cfg *app.Config) { cfg.Ingest.SweepInterval = time.Hour }})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	c := s.clients(key)
	ctx := context.Background()
	st := openIngestStore(t, s)
	claim := func(idem, eventID string, age time.Duration) {
		t.Helper()
		st.claim(t, projectID, idem, eventID, time.Now().UTC().Add(-age))
	}
	send := func(idem string) (*ingestv1.Event, error) {
		resp, err := c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID,
			EndpointId: ep.GetId(), EventType: "crash", Data: `{"n":1}`, IdempotencyKey: idem}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.GetEvent(), nil
	}

	// Claimed a moment ago, event not stored: its request may still be at
	// it, so the repeat is asked to come back, not told "duplicate" of an
	// event that may never exist.
	claim("fresh", "evt_06h22aaaaaaaaaaaaaaaaaaaaa", 0)
	if ev, err := send("fresh"); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("repeat of a fresh claim without its event = %v, %v; want Unavailable", ev, err)
	}

	// Claimed long ago, event never stored: the repeat takes the claim over
	// and the event is delivered under the claimed id.
	const abandoned = "evt_06h22bbbbbbbbbbbbbbbbbbbbb"
	claim("abandoned", abandoned, 20*time.Second)
	ev, err := send("abandoned")
	if err != nil || ev.GetId() != abandoned || ev.GetIsDuplicate() {
		t.Fatalf("repeat of an abandoned claim = %v, %v; want event %s", ev, err, abandoned)
	}
	waitDelivery(t, c, projectID, abandoned, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)

	// Stored, never confirmed (no marker), past the sweeper's grace: the
	// repeat is a duplicate, and it publishes the original at once.
	const orphan = "evt_06h22ccccccccccccccccccccc"
	claim("orphan", orphan, 10*time.Second)
	st.insertUnconfirmed(t, storedEvent{id: orphan, projectID: projectID, eventType: "crash", data: []byte(`{"n":1}`),
		idempotencyKey: "orphan", endpointID: ep.GetId(), createTime: time.Now().UTC().Add(-10 * time.Second)})
	dup, err := send("orphan")
	if err != nil || !dup.GetIsDuplicate() || dup.GetDuplicateOf() != orphan {
		t.Fatalf("repeat of a stored, unconfirmed event = %v, %v; want a duplicate of %s", dup, err, orphan)
	}
	waitDelivery(t, c, projectID, orphan, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if n := len(recv.byEvent(orphan)); n != 1 {
		t.Fatalf("the orphan was delivered %d times", n)
	}
	// The duplicate itself is never delivered.
	if n := len(recv.byEvent(dup.GetId())); n != 0 {
		t.Fatalf("the duplicate was delivered %d times", n)
	}
}
