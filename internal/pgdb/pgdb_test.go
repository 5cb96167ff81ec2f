package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookmesh/hookmesh/internal/testenv"
)

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"deadline", fmt.Errorf("write: %w", context.DeadlineExceeded), true},
		{"network", errors.New("read tcp: connection reset by peer"), true},
		{"a FATAL error ends the session", &pgconn.PgError{Severity: "FATAL", Code: "55000"}, true},
		{"admin shutdown", &pgconn.PgError{Severity: "ERROR", Code: "57P01"}, true},
		{"deadlock", &pgconn.PgError{Severity: "ERROR", Code: "40P01"}, true},
		{"too many connections", &pgconn.PgError{Severity: "ERROR", Code: "53300"}, true},
		{"a value refused", &pgconn.PgError{Severity: "ERROR", Code: "22021"}, false},
		{"a constraint", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// A database that refuses connections for a while, as the fault suite makes
// one, is a problem that may pass, not a refusal of what was written.
func TestRetryableWhenTheDatabaseRefusesConnections(t *testing.T) {
	base := testenv.RequirePostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	name := testenv.DatabaseName(t)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Skipf("cannot create a database here: %v", err)
	}
	defer func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) }()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	_, err = Open(ctx, u.String(), "s")
	if err == nil {
		t.Fatal("connected to a database that refuses connections")
	}
	if !Retryable(err) {
		t.Fatalf("Retryable(%v) = false", err)
	}
}
