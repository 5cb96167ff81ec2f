package mesh

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/groupcommit"
)

// TypeStateBatch is the AMQP type of a StateBatch.
const TypeStateBatch = "hookmesh.bus.v1.StateBatch"

// Publisher publishes messages and returns once the broker confirmed them
// all (a *bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// StatePublisher is a Publisher that carries the state changes of
// concurrent callers to each status partition in one StateBatch message:
// a state change is one of the four confirmed quorum-queue messages of a
// delivery, and most of the broker's work is per message. It waits for
// nothing to fill a batch (a group commit): a lone caller's changes go at
// once, and under load the changes that arrive while a batch is being
// published form the next. Every caller returns once its own changes are
// confirmed, as with the Publisher it wraps; other messages go through
// that Publisher as they are, at the same time.
type StatePublisher struct {
	pub   Publisher
	group *groupcommit.Group[[]bus.Message, struct{}]
}

// Batches of state changes: how many are published at once, and how many
// callers' changes one gathers at most.
const (
	stateWriters  = 2
	stateMaxBatch = 256
)

// NewStatePublisher wraps pub; timeout bounds the publishing of one batch
// (a caller whose batch is not confirmed in time gets an error, and its
// message is handled again).
func NewStatePublisher(pub Publisher, timeout time.Duration) *StatePublisher {
	s := &StatePublisher{pub: pub}
	s.group = groupcommit.New(stateWriters, stateMaxBatch, timeout, s.write)
	return s
}

// Close publishes what is queued and stops.
func (s *StatePublisher) Close() { s.group.Close() }

// Publish publishes msgs and returns once the broker confirmed them all:
// the state changes in batches, the others as they are.
func (s *StatePublisher) Publish(ctx context.Context, msgs []bus.Message) error {
	var states, others []bus.Message
	for _, m := range msgs {
		if m.Type == TypeState {
			states = append(states, m)
		} else {
			others = append(others, m)
		}
	}
	if len(states) == 0 {
		return s.pub.Publish(ctx, others)
	}
	if len(others) == 0 {
		_, err := s.group.Do(ctx, states)
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.pub.Publish(ctx, others) }()
	_, err := s.group.Do(ctx, states)
	if oerr := <-done; err == nil {
		err = oerr
	}
	return err
}

// write publishes the changes of many callers, one message per status
// partition, and waits for the confirms.
func (s *StatePublisher) write(ctx context.Context, items [][]bus.Message) ([]struct{}, error) {
	var msgs []bus.Message
	var counts []int
	byKey := map[string]int{}
	for _, item := range items {
		for _, m := range item {
			i, ok := byKey[m.Key]
			if !ok {
				i = len(msgs)
				byKey[m.Key] = i
				msgs = append(msgs, bus.Message{Exchange: m.Exchange, Key: m.Key, MessageID: m.MessageID, Type: TypeStateBatch})
				counts = append(counts, 0)
			}
			msgs[i] = appendState(msgs[i], m)
			counts[i]++
		}
	}
	// The id names the first change and how many follow it.
	for i := range msgs {
		if counts[i] > 1 {
			msgs[i].MessageID += "+" + strconv.Itoa(counts[i]-1)
		}
	}
	return make([]struct{}, len(items)), s.pub.Publish(ctx, msgs)
}

// appendState adds one state message's change to a batch message: a
// StateBatch is its changes one after the other, each as field 1 (the
// encoding of a repeated message field), so the change's bytes are copied,
// not decoded. A change about a line marks the batch the same way.
func appendState(batch, m bus.Message) bus.Message {
	batch.Body = binary.AppendUvarint(append(batch.Body, 0x0a), uint64(len(m.Body)))
	batch.Body = append(batch.Body, m.Body...)
	if k, ok := m.Headers[OrderingKeyHeader]; ok && batch.Headers == nil {
		batch.Headers = amqp.Table{OrderingKeyHeader: k}
	}
	return batch
}
