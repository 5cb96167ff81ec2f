package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Headers of a parked message.
const (
	HeaderParkedFrom   = "x-hookmesh-parked-from"
	HeaderParkedReason = "x-hookmesh-parked-reason"
	HeaderParkedID     = "x-hookmesh-parked-id"
	HeaderParkedAt     = "x-hookmesh-parked-at"
)

// ParkedMessage is a message of the parking queue.
type ParkedMessage struct {
	// ID names it for Replay: the id given when it was parked, or for a
	// message parked without one, a digest of its origin and body.
	ID        string
	Reason    string
	From      string
	Type      string
	MessageID string
	ParkTime  time.Time
	Body      []byte
	Headers   amqp.Table
}

// parkingMu keeps this process's listings and replays of the parking queue
// apart: each takes messages off the queue unacknowledged for a moment.
var parkingMu sync.Mutex

func parkedFrom(d amqp.Delivery) ParkedMessage {
	m := ParkedMessage{Type: d.Type, MessageID: d.MessageId, Body: d.Body, Headers: d.Headers}
	m.From, _ = d.Headers[HeaderParkedFrom].(string)
	m.Reason, _ = d.Headers[HeaderParkedReason].(string)
	m.ID, _ = d.Headers[HeaderParkedID].(string)
	switch t := d.Headers[HeaderParkedAt].(type) {
	case time.Time:
		m.ParkTime = t
	case string:
		m.ParkTime, _ = time.Parse(time.RFC3339Nano, t)
	}
	if m.ParkTime.IsZero() {
		m.ParkTime = d.Timestamp
	}
	if m.ID == "" {
		sum := sha256.Sum256(append([]byte(m.From+"\x00"+m.MessageID+"\x00"), d.Body...))
		m.ID = "pk_" + hex.EncodeToString(sum[:10])
	}
	return m
}

// ListParked returns up to limit messages of the parking queue, oldest
// first, and how many it holds. The messages stay on the queue: they are
// read unacknowledged and handed back, in their places.
func (c *Conn) ListParked(ctx context.Context, limit int) ([]ParkedMessage, int, error) {
	parkingMu.Lock()
	defer parkingMu.Unlock()
	ch, err := c.Channel(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Closing the channel hands back whatever it did not acknowledge.
	defer func() { _ = ch.Close() }()
	var out []ParkedMessage
	total := 0
	for len(out) < limit {
		d, ok, err := ch.Get(c.cfg.ParkingQueue, false)
		if err != nil {
			return nil, 0, fmt.Errorf("read the parking queue: %w", err)
		}
		if !ok {
			break
		}
		if len(out) == 0 {
			total = int(d.MessageCount) + 1
		}
		out = append(out, parkedFrom(d))
	}
	return out, max(total, len(out)), nil
}

// Replay publishes the parked messages named by ids (every one when all is
// true) again to the queue each came from, and acknowledges each off the
// parking queue only once the broker has confirmed its copy. It returns how
// many it replayed and the ids it did not find.
func (c *Conn) Replay(ctx context.Context, ids []string, all bool) (int, []string, error) {
	parkingMu.Lock()
	defer parkingMu.Unlock()
	want := idSet(ids)
	ch, err := c.Channel(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = ch.Close() }()
	if err := ch.Confirm(false); err != nil {
		return 0, nil, fmt.Errorf("confirm mode: %w", err)
	}
	// A copy the broker cannot route (its queue is gone) comes back before
	// its confirmation.
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	replayed := 0
	// Read at most what the queue held at the start, so that a message
	// parked again meanwhile is not taken twice.
	remaining := -1
	for remaining != 0 {
		d, ok, err := ch.Get(c.cfg.ParkingQueue, false)
		if err != nil {
			return replayed, nil, fmt.Errorf("read the parking queue: %w", err)
		}
		if !ok {
			break
		}
		if remaining < 0 {
			remaining = int(d.MessageCount) + 1
		}
		remaining--
		m := parkedFrom(d)
		if !all && !want[m.ID] {
			continue
		}
		delete(want, m.ID)
		if err := c.replayOne(ctx, ch, returns, d, m); err != nil {
			return replayed, nil, err
		}
		replayed++
		if !all && len(want) == 0 {
			break
		}
	}
	return replayed, missingIDs(ids, want), nil
}

// idSet is the set of ids.
func idSet(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// missingIDs lists, in the order of ids, those still in want: the ones
// Replay did not find.
func missingIDs(ids []string, want map[string]bool) []string {
	var missing []string
	for _, id := range ids {
		if want[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// replayOne publishes the parked message m, read as d, to the queue it
// came from on ch, which is in confirm mode with unroutable copies coming
// back on returns, and acknowledges it off the parking queue once the
// broker has confirmed and routed the copy.
func (c *Conn) replayOne(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, d amqp.Delivery, m ParkedMessage) error {
	if m.From == "" {
		return fmt.Errorf("parked message %s does not say where it came from (no %s header)", m.ID, HeaderParkedFrom)
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", m.From, true, false, amqp.Publishing{
		Headers: replayHeaders(d.Headers, m.ID), ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
		MessageId: d.MessageId, Type: d.Type, Timestamp: d.Timestamp, Body: d.Body,
	})
	if err != nil {
		return fmt.Errorf("replay %s to %s: %w", m.ID, m.From, err)
	}
	okConf, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("replay %s to %s: %w", m.ID, m.From, err)
	}
	if !okConf {
		return fmt.Errorf("replay %s to %s: the broker refused it", m.ID, m.From)
	}
	select {
	case r := <-returns:
		return fmt.Errorf("replay %s: queue %s does not exist (%s); the message stays parked", m.ID, m.From, r.ReplyText)
	default:
	}
	if err := d.Ack(false); err != nil {
		return fmt.Errorf("take %s off the parking queue: %w", m.ID, err)
	}
	c.logger.InfoContext(ctx, "replayed a parked message", "id", m.ID, "queue", m.From, "reason", m.Reason)
	return nil
}

// replayHeaders are the headers of a parked message's copy: its own, less
// those that parking added, and the parked id it was replayed from.
func replayHeaders(parked amqp.Table, id string) amqp.Table {
	headers := amqp.Table{}
	for k, v := range parked {
		switch k {
		case HeaderParkedFrom, HeaderParkedReason, HeaderParkedID, HeaderParkedAt:
		default:
			headers[k] = v
		}
	}
	headers["x-hookmesh-replayed-from-parking"] = id
	return headers
}
