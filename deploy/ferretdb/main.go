// Command ferretdb runs an embedded FerretDB (MongoDB wire protocol on
// PostgreSQL) for hookmesh's local stack and tests.
//
// FerretDB's own cmd/ferretdb panics when built with `go install` (its
// version file is empty in the published module), so this small main embeds
// the library package github.com/FerretDB/FerretDB/ferretdb instead. It lives
// in its own module so that hookmesh's go.mod stays lean.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	// Each flag's default can also be set by the environment variable that
	// FerretDB's own command uses (FERRETDB_POSTGRESQL_URL keeps a password
	// out of the process list).
	listenAddr := flag.String("listen-addr", env("FERRETDB_LISTEN_ADDR", "127.0.0.1:27017"),
		"TCP address to serve the MongoDB wire protocol on [$FERRETDB_LISTEN_ADDR]")
	pgURL := flag.String("postgresql-url", env("FERRETDB_POSTGRESQL_URL", "postgres://postgres@127.0.0.1:5432/hookmesh"),
		"PostgreSQL URL of the backend database, which must exist [$FERRETDB_POSTGRESQL_URL]")
	stateDir := flag.String("state-dir", env("FERRETDB_STATE_DIR", "./.hookmesh/ferretdb"),
		"process state directory, created if missing [$FERRETDB_STATE_DIR]")
	logLevel := flag.String("log-level", env("FERRETDB_LOG_LEVEL", "warn"),
		"log level: debug, info, warn or error [$FERRETDB_LOG_LEVEL]")
	flag.Parse()

	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(*logLevel))); err != nil {
		return fmt.Errorf("invalid -log-level %q: want debug, info, warn or error", *logLevel)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	// The embeddable package keeps its process state in memory (it has no
	// state directory setting); the directory is still created so that the
	// flag matches FerretDB's own command and scripts can rely on it.
	if *stateDir != "" {
		if err := os.MkdirAll(*stateDir, 0o700); err != nil {
			return fmt.Errorf("creating state directory: %w", err)
		}
	}

	// FerretDB connects to PostgreSQL lazily and would listen (and then fail
	// every command) with a wrong URL or a missing database: check first, so
	// that an open port means a usable server.
	if err := checkPostgreSQL(*pgURL); err != nil {
		return err
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: *listenAddr,
		},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// New has bound the listener, so MongoDBURI does not block.
	logger.Info("FerretDB started", "uri", f.MongoDBURI(), "backend", redact(*pgURL))

	select {
	case err = <-done:
		// Run returned on its own: the listener failed.
		if err == nil {
			err = errors.New("listener stopped unexpectedly")
		}
		return err
	case <-ctx.Done():
	}

	logger.Info("FerretDB shutting down")
	stop() // a second signal kills the process at once

	select {
	case err = <-done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("shutdown timed out after 30s")
	}
}

// env returns the value of the environment variable key, or def if it is
// unset or empty.
func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// checkPostgreSQL connects to the backend once, retrying for a few seconds
// while PostgreSQL is unreachable (still starting), but not when it answered
// with an error (wrong password, missing database).
func checkPostgreSQL(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var err error
	for {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, withoutPoolParams(url)); err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Errorf("PostgreSQL backend %s is not usable: %w", redact(url), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL backend %s is not usable (is PostgreSQL running and does the database exist?): %w", redact(url), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// withoutPoolParams drops the pool_* settings of a URL, which FerretDB's
// connection pool reads and a single connection would send to PostgreSQL as
// unknown run-time parameters.
func withoutPoolParams(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redact hides the password of a PostgreSQL URL for logging.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return u[:scheme+3] + user + ":xxxxx" + u[at:]
	}
	return u
}
