package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/testenv"
	"github.com/hookmesh/hookmesh/services/ingest"
	"github.com/hookmesh/hookmesh/services/status"
)

// noKeys knows no project key: only the admin key is accepted.
type noKeys struct{}

func (noKeys) AuthenticateKey(context.Context, string) (string, string, error) {
	return "", "", auth.ErrUnknownKey
}

// TestHistoryMode runs -history against a status service keeping its
// history in PostgreSQL, as hookmesh serves it: every query is timed, over
// the deliveries stored.
func TestHistoryMode(t *testing.T) {
	t.Parallel()
	url := testenv.RequirePostgresURL(t)
	schema := testenv.DatabaseName(t) + "_status"
	ingestSchema := strings.TrimSuffix(schema, "_status") + "_ingest"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgdb.Open(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		_ = pgdb.DropSchema(context.Background(), url, schema)
		_ = pgdb.DropSchema(context.Background(), url, ingestSchema)
	})
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := status.New(status.DefaultConfig(), nil, logger, status.WithPostgres(pool))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Init(ctx); err != nil {
		t.Fatal(err)
	}
	const adminKey = "bench-admin-key"
	mux := http.NewServeMux()
	keys := auth.NewKeys(adminKey, noKeys{})
	svc.Register(mux, connect.WithInterceptors(apierr.NewInterceptor(logger), keys.Interceptor()))
	// Ingest, for the event list; it lists events without their counts
	// here, and sends none.
	ipool, err := pgdb.Open(ctx, url, ingestSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ipool.Close)
	isvc, err := ingest.New(ingest.Config{}, ingest.NewPostgresStore(ipool), nil, nil, nil, mesh.NewTopology("bench", 1), keys, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := isvc.Init(ctx); err != nil {
		t.Fatal(err)
	}
	isvc.Register(mux, func(h http.Handler) http.Handler { return h }, connect.WithInterceptors(apierr.NewInterceptor(logger), keys.Interceptor()))
	srv := testenv.Server(t, mux)

	cfg, err := parseFlags([]string{"-api", srv.URL, "-history", "12000", "-history-calls", "3",
		"-postgres-url", url, "-history-schema", schema}, func(string) string { return adminKey }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h, err := runHistory(ctx, &cfg, t.Logf)
	if err != nil {
		t.Fatalf("runHistory: %v", err)
	}
	names := map[string]bool{}
	for _, q := range h.Queries {
		names[q.Name] = true
		if q.Latency.N != 3 {
			t.Errorf("%s: %d calls timed, want 3", q.Name, q.Latency.N)
		}
	}
	// 3,000 deliveries a project: 150 of an endpoint, so its 20th page of
	// 50 does not exist; the project's does.
	for _, want := range []string{"GetDelivery", "ListAttempts", "ListDeliveries, all, page 1", "ListDeliveries, all, page 20",
		"ListDeliveries, statuses FAILED, DISCARDED, page 1", "ListDeliveries, event, page 1", "CountDeliveries, project",
		"CountDeliveries, event", "SummarizeEvents, 50 events", "GetEvent", "ListEvents, all, page 1", "ListEvents, event type, page 1",
		"ListEvents, last 7 days, page 1"} {
		if !names[want] {
			t.Errorf("no figure for %q in %v", want, names)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT sum(n) FROM project_counts").Scan(&n); err != nil || n != 12000 {
		t.Errorf("counted %d deliveries (%v), want 12000", n, err)
	}
	if err := ipool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 1200 {
		t.Errorf("stored %d events (%v), want 1200", n, err)
	}
	var out strings.Builder
	h.printHuman(&out)
	if !strings.Contains(out.String(), "over 12000 stored deliveries and 1200 events") {
		t.Errorf("printed:\n%s", out.String())
	}

	if _, err := parseFlags([]string{"-history", "10"}, func(k string) string {
		if k == "HOOKMESH_ADMIN_KEY" {
			return adminKey
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "-postgres-url") {
		t.Errorf("-history without a PostgreSQL URL: %v, want an error naming -postgres-url", err)
	}
}
