package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// FilledEvent is an event of a made-up history (FillEvents).
type FilledEvent struct {
	ID, ProjectID, EventType string
	CreateTime               time.Time
}

// FillEvents stores events in the PostgreSQL schema of pool (setting up its
// tables first) with COPY, each with a payload of about payloadBytes, as
// published and not duplicates, then analyzes the table: for measuring the
// event list at a given size, not for serving. Ids must be new.
func FillEvents(ctx context.Context, pool *pgxpool.Pool, events []FilledEvent, payloadBytes int) error {
	if err := NewPostgresStore(pool).init(ctx); err != nil {
		return fmt.Errorf("fill events: %w", err)
	}
	pad := strings.Repeat("x", max(payloadBytes-64, 0))
	const chunk = 10000
	for i := 0; i < len(events); i += chunk {
		rows := make([][]any, 0, chunk)
		for _, e := range events[i:min(i+chunk, len(events))] {
			data := []byte(fmt.Sprintf(`{"id":%q,"amount":4200,"pad":%q}`, e.ID, pad))
			rows = append(rows, []any{e.ID, e.ProjectID, e.EventType, data, nil, "", "", "", false, false, "", e.CreateTime})
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "project_id", "event_type", "data", "custom_headers",
			"idempotency_key", "endpoint_id", "owner_id", "broadcast", "is_duplicate", "duplicate_of", "create_time"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("fill events: copy: %w", err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE events"); err != nil {
		return fmt.Errorf("fill events: analyze: %w", err)
	}
	return nil
}
