package ingest

import (
	"context"
	"slices"
	"time"
)

// The outbox: an event is stored before it is published, and once the
// broker has confirmed it, the store records so (markPublished). An event
// not so marked was stored but perhaps not published (the broker was away,
// or the process died in between); it is published again by the sweeper,
// or at once when its idempotency key is sent again. The router and the
// status service are idempotent, so an event published twice (a mark lost
// in a crash) makes no second delivery id.

// Sweep publishes the events stored at least grace ago, and since the last
// sweep of this process (at most lookback ago), that have no publish
// marker. Run calls it periodically; it is safe on several ingest
// replicas at once (a double publish is harmless).
func (s *Service) Sweep(ctx context.Context, lookback, grace time.Duration) (int, error) {
	now := time.Now().UTC()
	to := now.Add(-grace)
	from := now.Add(-lookback)
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	// Overlap the previous window by grace, for events stamped by a replica
	// whose clock is a little behind.
	if !s.sweptUntil.IsZero() && s.sweptUntil.Add(-grace).After(from) {
		from = s.sweptUntil.Add(-grace)
	}
	docs, err := s.store.unpublishedSince(ctx, from, to)
	if err != nil {
		return 0, err
	}
	// An event whose request is still waiting for the broker's confirm
	// (the broker is away, say) is its request's to publish; the next
	// sweeps look at it again, in case the request gives up.
	until := to
	docs = slices.DeleteFunc(docs, func(d eventDoc) bool {
		_, busy := s.publishing.Load(d.ID)
		if busy && d.CreateTime.Before(until) {
			until = d.CreateTime
		}
		return busy
	})
	for i := range docs {
		if err := s.publish(ctx, &docs[i]); err != nil {
			return i, err
		}
	}
	s.sweptUntil = until
	if len(docs) > 0 {
		s.logger.InfoContext(ctx, "published events the broker had not confirmed", "events", len(docs))
	}
	return len(docs), nil
}

// runSweeper sweeps every interval until ctx ends.
func (s *Service) runSweeper(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Sweep(ctx, s.cfg.SweepLookback, s.cfg.SweepGrace); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "outbox sweep failed", "err", err)
		}
	}
}
