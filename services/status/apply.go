package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// rank orders the phases of one attempt: waiting in its line (only ever
// before the first), queued, being sent, and its outcome.
// Outcomes share a rank: an attempt ends only once.
func rank(s statusv1.DeliveryStatus) (int64, bool) {
	switch s {
	case statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING:
		return 0, true
	case statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED:
		return 1, true
	case statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING:
		return 2, true
	case statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY,
		statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS,
		statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
		statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED:
		return 3, true
	}
	return 0, false
}

// attemptOf is the attempt a change belongs to. Attempts are numbered from 1;
// an attempt 0 (a SCHEDULED, or a DISCARDED before anything was sent) can
// only mean the first.
func attemptOf(c *busv1.StateChange) uint32 {
	return max(c.GetAttempt(), 1)
}

// attemptsMade is what a delivery shows as its attempts after the change:
// the number of the latest attempt made or under way, so one less while
// the next is only SCHEDULED (0 before the first).
func attemptsMade(c *busv1.StateChange) uint32 {
	switch c.GetStatus() {
	case statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED, statusv1.DeliveryStatus_DELIVERY_STATUS_WAITING:
		return attemptOf(c) - 1
	}
	return attemptOf(c)
}

// seqOf orders the changes of one delivery by (attempt, rank): a change is
// applied only when its seq is above the stored one.
func seqOf(c *busv1.StateChange) int64 {
	r, _ := rank(c.GetStatus())
	return int64(attemptOf(c))*8 + r
}

// CheckChange reports why a state change can never be applied, so that a
// consumer can park it instead of retrying it forever. Apply skips such
// changes.
func CheckChange(c *busv1.StateChange) error {
	switch {
	case c == nil:
		return errors.New("state change is empty")
	case c.GetDeliveryId() == "":
		return errors.New("state change has no delivery_id")
	case c.GetProjectId() == "":
		return fmt.Errorf("state change of delivery %s has no project_id", c.GetDeliveryId())
	}
	if _, ok := rank(c.GetStatus()); !ok {
		return fmt.Errorf("state change of delivery %s has invalid status %v", c.GetDeliveryId(), c.GetStatus())
	}
	// A time out of 0001–9999 cannot be stored as such (PostgreSQL refuses
	// or wraps it).
	for _, t := range []struct {
		name string
		ts   *timestamppb.Timestamp
	}{
		{"time", c.GetTime()},
		{"event_create_time", c.GetEventCreateTime()},
		{"next_attempt_time", c.GetNextAttemptTime()},
		{"record.start_time", c.GetRecord().GetStartTime()},
	} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			return fmt.Errorf("state change of delivery %s has invalid %s: %w", c.GetDeliveryId(), t.name, err)
		}
	}
	return nil
}

// Apply applies a batch of state changes durably (the caller acks the AMQP
// messages only after it returns nil). It is idempotent (a replayed batch
// changes nothing) and order-insensitive (a change is applied only when it
// moves the delivery forward, by attempt and then phase). The caller
// guarantees that one delivery's changes are applied by one Apply at a time;
// the writes are single-document atomic operations that stay correct on
// MongoDB even without that guarantee.
//
// Within the batch the changes of a delivery are coalesced into one write,
// and every change that carries a record adds an attempt. Attempts are
// written before deliveries, so a delivery never shows an outcome whose
// attempt is missing. Changes that CheckChange rejects are logged and
// skipped.
func (s *Service) Apply(ctx context.Context, changes []*busv1.StateChange) error {
	deliveries, attempts := s.plan(changes, time.Now())
	if err := s.store.write(ctx, deliveries, attempts); err != nil {
		return fmt.Errorf("apply %d state changes: %w", len(changes), err)
	}
	return nil
}

// pending collects the changes of one delivery within a batch.
type pending struct {
	winner    *busv1.StateChange // highest seq; the first seen among equals
	seq       int64
	record    *statusv1.Attempt // of the highest-seq change that has one
	recordSeq int64
	changes   []*busv1.StateChange
}

// plan coalesces a batch into one write per delivery, in first-seen order,
// and the attempts to insert. now stands in for a missing change time.
func (s *Service) plan(changes []*busv1.StateChange, now time.Time) ([]*deliveryWrite, []attemptDoc) {
	byID := make(map[string]*pending, len(changes))
	var order []*pending
	var attempts []attemptDoc
	seenAttempt := make(map[string]bool)
	for _, c := range changes {
		if err := CheckChange(c); err != nil {
			s.logger.Warn("skip state change that can never apply", "delivery_id", c.GetDeliveryId(), "err", err)
			continue
		}
		seq := seqOf(c)
		p := byID[c.GetDeliveryId()]
		if p == nil {
			p = &pending{winner: c, seq: seq}
			byID[c.GetDeliveryId()] = p
			order = append(order, p)
		} else if seq > p.seq {
			p.winner, p.seq = c, seq
		}
		p.changes = append(p.changes, c)
		if rec := c.GetRecord(); rec != nil {
			if p.record == nil || seq > p.recordSeq {
				p.record, p.recordSeq = rec, seq
			}
			a := newAttemptDoc(c, rec)
			a.changeTime = now
			if c.GetTime() != nil {
				a.changeTime = c.GetTime().AsTime()
			}
			if !seenAttempt[a.ID] {
				seenAttempt[a.ID] = true
				attempts = append(attempts, a)
			}
		}
	}
	writes := make([]*deliveryWrite, len(order))
	for i, p := range order {
		writes[i] = p.write(now)
	}
	return writes, attempts
}

// storable replaces what a MongoDB-compatible store may refuse in a string
// (FerretDB on PostgreSQL refuses NUL): a response body is whatever the
// endpoint sent, and one that cannot be stored must not stall the status
// pipeline.
func storable(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func newAttemptDoc(c *busv1.StateChange, rec *statusv1.Attempt) attemptDoc {
	n := rec.GetAttempt()
	if n == 0 {
		n = attemptOf(c)
	}
	a := attemptDoc{
		ID:              attemptID(c.GetDeliveryId(), n),
		DeliveryID:      c.GetDeliveryId(),
		ProjectID:       c.GetProjectId(),
		EndpointID:      c.GetEndpointId(),
		Attempt:         int64(n),
		StatusCode:      rec.GetStatusCode(),
		LatencyMS:       int64(rec.GetLatencyMs()),
		RequestHeaders:  headersToDocs(rec.GetRequestHeaders()),
		ResponseHeaders: headersToDocs(rec.GetResponseHeaders()),
		ResponseBody:    storable(rec.GetResponseBody()),
		Error:           storable(rec.GetError()),
		RemoteIP:        rec.GetRemoteIp(),
		URL:             rec.GetUrl(),
	}
	if rec.GetStartTime() != nil {
		t := storeTime(rec.GetStartTime().AsTime())
		a.StartTime = &t
	}
	return a
}

// write turns the coalesced changes of a delivery into its document and
// the update for an existing one.
func (p *pending) write(now time.Time) *deliveryWrite {
	c := p.winner
	// A change may lack a descriptive field that another change of the
	// batch carries; take the winner's first.
	pick := func(get func(*busv1.StateChange) string) string {
		if v := get(c); v != "" {
			return v
		}
		for _, o := range p.changes {
			if v := get(o); v != "" {
				return v
			}
		}
		return ""
	}
	updateTime := now
	if c.GetTime() != nil {
		updateTime = c.GetTime().AsTime()
	}
	updateTime = storeTime(updateTime)

	doc := deliveryDoc{
		ID:          c.GetDeliveryId(),
		ProjectID:   c.GetProjectId(),
		EventID:     pick((*busv1.StateChange).GetEventId),
		EndpointID:  pick((*busv1.StateChange).GetEndpointId),
		EventType:   pick((*busv1.StateChange).GetEventType),
		OrderingKey: pick((*busv1.StateChange).GetOrderingKey),
		Status:      int32(c.GetStatus()),
		Seq:         p.seq,
		Attempts:    int64(attemptsMade(c)),
		CreateTime:  p.createTime(now),
		UpdateTime:  updateTime,
	}
	set := bson.D{
		{Key: "project_id", Value: doc.ProjectID},
		{Key: "status", Value: doc.Status},
		{Key: "seq", Value: doc.Seq},
		{Key: "attempts", Value: doc.Attempts},
		{Key: "update_time", Value: doc.UpdateTime},
	}
	// An update never blanks a descriptive field that a change left out.
	for _, f := range []bson.E{
		{Key: "event_id", Value: doc.EventID},
		{Key: "endpoint_id", Value: doc.EndpointID},
		{Key: "event_type", Value: doc.EventType},
		{Key: "ordering_key", Value: doc.OrderingKey},
	} {
		if f.Value != "" {
			set = append(set, f)
		}
	}
	var unset bson.D
	if nat := c.GetNextAttemptTime(); nat != nil {
		t := storeTime(nat.AsTime())
		doc.NextAttemptTime = &t
		set = append(set, bson.E{Key: "next_attempt_time", Value: t})
	} else {
		unset = append(unset, bson.E{Key: "next_attempt_time", Value: ""})
	}
	// last_* describe the latest attempt that has a result; a change
	// without a record (SCHEDULED, PROCESSING) keeps the previous one.
	if p.record != nil {
		doc.LastStatusCode = p.record.GetStatusCode()
		doc.LastError = storable(p.record.GetError())
		set = append(set,
			bson.E{Key: "last_status_code", Value: doc.LastStatusCode},
			bson.E{Key: "last_error", Value: doc.LastError})
	}
	return &deliveryWrite{doc: doc, set: set, unset: unset, hasRecord: p.record != nil, outcomes: p.outcomes(now)}
}

// outcomes returns the attempt outcomes among the changes, one per seq, in
// seq order.
func (p *pending) outcomes(now time.Time) []outcomeMark {
	var out []outcomeMark
	for _, c := range p.changes {
		if !isOutcome(int32(c.GetStatus())) {
			continue
		}
		seq := seqOf(c)
		if slices.ContainsFunc(out, func(o outcomeMark) bool { return o.seq == seq }) {
			continue
		}
		t := now
		if c.GetTime() != nil {
			t = c.GetTime().AsTime()
		}
		out = append(out, outcomeMark{seq: seq, status: int32(c.GetStatus()), time: storeTime(t)})
	}
	slices.SortFunc(out, func(a, b outcomeMark) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// createTime is the event's creation time when any change carries it (all
// deliveries of an event then sort together), else the earliest change
// time: the same whatever the order the changes arrived in.
func (p *pending) createTime(now time.Time) time.Time {
	var earliest time.Time
	for _, c := range p.changes {
		if t := c.GetEventCreateTime(); t != nil {
			return storeTime(t.AsTime())
		}
		if t := c.GetTime(); t != nil && (earliest.IsZero() || t.AsTime().Before(earliest)) {
			earliest = t.AsTime()
		}
	}
	if earliest.IsZero() {
		earliest = now
	}
	return storeTime(earliest)
}
