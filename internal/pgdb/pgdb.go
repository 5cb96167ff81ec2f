// Package pgdb opens the PostgreSQL database that keeps hookmesh's delivery
// history (deliveries, attempts, counters and the event list) and sets up
// its tables.
//
// Each service keeps its tables in a schema of its own, named like its
// MongoDB database (<prefix>_status, <prefix>_ingest), so that several
// deployments, or several tests, can share one PostgreSQL database.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to url with search_path set to schema, creating the schema
// when it does not exist. It fails when the server does not answer within
// the context's deadline.
func Open(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("postgres schema %q: use lower-case letters, digits and _ (at most 63)", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("HOOKMESH_POSTGRES_URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres at %s: %w", cfg.ConnConfig.Host, err)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		// Several processes may race to create it; one wins.
		var exists bool
		if err2 := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err2 != nil || !exists {
			pool.Close()
			return nil, fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	return pool, nil
}

// Migrate runs statements (CREATE TABLE IF NOT EXISTS and the like, each
// safe to run again) in one transaction, holding an advisory lock named by
// the schema and name so that processes starting together do not interleave.
func Migrate(ctx context.Context, pool *pgxpool.Pool, name string, statements []string) error {
	var schema string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(schema + "/" + name))
	lock := int64(h.Sum64() >> 1)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lock); err != nil {
		return fmt.Errorf("postgres: lock for %s: %w", name, err)
	}
	for _, stmt := range statements {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: set up %s: %w (in %q)", name, err, firstLine(stmt))
		}
	}
	return tx.Commit(ctx)
}

// DropSchema removes schema and everything in it (tests use it to clean up).
func DropSchema(ctx context.Context, url, schema string) error {
	if !schemaName.MatchString(schema) {
		return errors.New("bad schema name")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}

// Retryable reports whether err is a problem that may pass (the server
// restarting, unreachable, refusing connections to the database for a
// while, a deadlock), as opposed to a statement or value the server refuses.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// Failing to connect is always worth another try, whatever the server
	// said: "the database system is starting up", "database is not
	// currently accepting connections", "too many clients".
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// A FATAL or PANIC error ends the session, not the statement.
		if pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC" {
			return true
		}
		if pgErr.Code == "55P03" { // lock not available
			return true
		}
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58", "40": // connection, resources, operator intervention, system, serialization/deadlock
			return true
		}
		return false
	}
	return true // network errors carry no SQL state
}

// Timeout is how long a store call waits for PostgreSQL when its context
// has no deadline.
const Timeout = 30 * time.Second

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
