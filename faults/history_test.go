//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// historyDB is the PostgreSQL database of the delivery history.
type historyDB struct {
	url string
}

// count counts the rows of table in schema.
func (h *historyDB) count(ctx context.Context, schema, table string) (int, error) {
	conn, err := pgx.Connect(ctx, h.url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n)
	return n, err
}

// adminConn connects to the server's maintenance database, "postgres", as
// the history's role: a database cannot refuse connections to itself.
func (h *historyDB) adminConn(ctx context.Context) (*pgx.Conn, error) {
	u, err := url.Parse(h.url)
	if err != nil {
		return nil, err
	}
	u.Path = "/postgres"
	return pgx.Connect(ctx, u.String())
}

// admin runs sql in the maintenance database.
func (h *historyDB) admin(ctx context.Context, sql string) error {
	conn, err := h.adminConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (h *historyDB) name() string {
	u, _ := url.Parse(h.url)
	return u.Path[1:]
}

// cut makes the database unreachable as a stopped server would be: it
// refuses new connections and ends every open one.
func (h *historyDB) cut(ctx context.Context) error {
	db := pgx.Identifier{h.name()}.Sanitize()
	if err := h.admin(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("refuse connections to %s: %w", db, err)
	}
	// Sessions may still be starting: end them until none is left.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		err := h.adminRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &left, h.name())
		if err != nil {
			return fmt.Errorf("end the sessions of %s: %w", db, err)
		}
		if left == 0 || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// restore lets the database take connections again.
func (h *historyDB) restore(ctx context.Context) error {
	return h.admin(ctx, "ALTER DATABASE "+pgx.Identifier{h.name()}.Sanitize()+" ALLOW_CONNECTIONS true")
}

func (h *historyDB) adminRow(ctx context.Context, sql string, dst any, args ...any) error {
	conn, err := h.adminConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dst)
}
