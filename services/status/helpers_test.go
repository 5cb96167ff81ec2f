package status

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/pgdb"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// Short names for the statuses.
const (
	scheduled  = statusv1.DeliveryStatus_DELIVERY_STATUS_SCHEDULED
	processing = statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING
	success    = statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS
	retry      = statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY
	failed     = statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	discarded  = statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED
)

// The two places the history can be kept.
const (
	onMongoDB  = "mongodb"
	onPostgres = "postgres"
)

var storeKinds = []string{onMongoDB, onPostgres}

// forEachStore runs f as a parallel subtest for each kind of store. The
// PostgreSQL one is skipped when HOOKMESH_TEST_POSTGRES_URL is not set.
func forEachStore(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f(t, kind)
		})
	}
}

// testService returns a service over a fresh MongoDB database or
// PostgreSQL schema, set up as Init does it, dropped when the test ends.
func testService(tb testing.TB, kind string) *Service {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var (
		s   *Service
		err error
	)
	switch kind {
	case onMongoDB:
		s, err = New(DefaultConfig(), testenv.Database(tb), logger)
	case onPostgres:
		s, err = New(DefaultConfig(), nil, logger, WithPostgres(testPool(tb)))
	default:
		tb.Fatalf("unknown store %q", kind)
	}
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Init(ctx); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return s
}

// testPool opens a fresh PostgreSQL schema, dropped when the test ends.
func testPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := testenv.RequirePostgresURL(tb)
	schema := testenv.DatabaseName(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgdb.Open(ctx, url, schema)
	if err != nil {
		tb.Fatalf("open PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pgdb.DropSchema(ctx, url, schema); err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
		}
	})
	return pool
}

// countAttempts counts every stored attempt.
func countAttempts(tb testing.TB, s *Service) int64 {
	tb.Helper()
	ctx := context.Background()
	var n int64
	var err error
	switch st := s.store.(type) {
	case *deliveryStore:
		n, err = st.attempts.CountDocuments(ctx, bson.D{})
	case *pgStore:
		err = st.pool.QueryRow(ctx, "SELECT count(*) FROM attempts").Scan(&n)
	}
	if err != nil {
		tb.Fatalf("count attempts: %v", err)
	}
	return n
}

// delivery describes a test delivery; its changes are made by change.
type delivery struct {
	id, project, event, endpoint, eventType string
	created                                 time.Time
}

// change returns the state change of d moving to st in attempt n. Its time
// grows with (attempt, phase); outcomes carry a record and a RETRY a next
// attempt time.
func (d delivery) change(st statusv1.DeliveryStatus, n uint32) *busv1.StateChange {
	r, _ := rank(st)
	at := d.created.Add(time.Duration(n)*time.Minute + time.Duration(r)*time.Second)
	c := &busv1.StateChange{
		DeliveryId:      d.id,
		ProjectId:       d.project,
		EventId:         d.event,
		EndpointId:      d.endpoint,
		EventType:       d.eventType,
		Status:          st,
		Attempt:         n,
		Time:            timestamppb.New(at),
		EventCreateTime: timestamppb.New(d.created),
	}
	switch st {
	case success, retry, failed:
		code := int32(200)
		errText := ""
		if st != success {
			code, errText = 503, fmt.Sprintf("endpoint answered 503 on attempt %d", n)
		}
		c.Record = &statusv1.Attempt{
			DeliveryId:      d.id,
			Attempt:         n,
			StatusCode:      code,
			LatencyMs:       12 + n,
			RequestHeaders:  map[string]string{"X-Hookmesh-Attempt": strconv.FormatUint(uint64(n), 10), "Content-Type": "application/json"},
			ResponseHeaders: map[string]string{"Server": "test", "X.Dotted": "legal in HTTP", "$dollar": "too"},
			ResponseBody:    `{"ok":true}`,
			Error:           errText,
			RemoteIp:        "127.0.0.1",
			StartTime:       timestamppb.New(at.Add(-time.Second)),
			Url:             "https://example.test/hook",
		}
	}
	if st == retry {
		c.NextAttemptTime = timestamppb.New(at.Add(30 * time.Second))
	}
	return c
}

// snapshot returns the stored state of the given deliveries of a project
// and their attempts, for comparing before and after a replay.
func snapshot(tb testing.TB, s *Service, projectID string, ids ...string) string {
	tb.Helper()
	ctx := context.Background()
	var out strings.Builder
	for _, id := range ids {
		d, err := s.store.getDelivery(ctx, projectID, id)
		if err != nil {
			tb.Fatalf("snapshot %s: %v", id, err)
		}
		attempts, err := s.store.listAttempts(ctx, projectID, id)
		if err != nil {
			tb.Fatalf("snapshot %s: %v", id, err)
		}
		if d == nil {
			out.WriteString("missing " + id + "\n")
			continue
		}
		fmt.Fprintf(&out, "seq %d %v\n", d.Seq, d.proto())
		for _, a := range attempts {
			fmt.Fprintf(&out, "%s %v\n", a.ID, a.proto())
		}
	}
	return out.String()
}
