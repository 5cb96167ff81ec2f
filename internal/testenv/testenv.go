// Package testenv gives integration tests their own slice of the real
// services: a fresh MongoDB database and a unique AMQP name prefix per test,
// removed when the test ends. `make test` starts the services and sets
// HOOKMESH_TEST_MONGODB_URI and HOOKMESH_TEST_AMQP_URL.
package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/internal/store"
)

var (
	clientOnce sync.Once
	client     *mongo.Client
	errClient  error
)

// MongoURI returns the test database server's URI, skipping the test when
// it is not configured.
func MongoURI(tb testing.TB) string {
	tb.Helper()
	uri := os.Getenv("HOOKMESH_TEST_MONGODB_URI")
	if uri == "" {
		tb.Skip("HOOKMESH_TEST_MONGODB_URI is not set: run the suite with `make test`, which starts FerretDB")
	}
	return uri
}

// AMQPURL returns the test broker's URL, skipping the test when it is not
// configured.
func AMQPURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("HOOKMESH_TEST_AMQP_URL")
	if u == "" {
		tb.Skip("HOOKMESH_TEST_AMQP_URL is not set: run the suite with `make test`, which starts RabbitMQ")
	}
	return u
}

// PostgresURL returns the PostgreSQL database that tests keep the delivery
// history in, or "" when HOOKMESH_TEST_POSTGRES_URL is not set (the history
// then stays in MongoDB).
func PostgresURL() string { return os.Getenv("HOOKMESH_TEST_POSTGRES_URL") }

// RequirePostgresURL is PostgresURL for tests that need PostgreSQL: it skips
// the test when the variable is not set.
func RequirePostgresURL(tb testing.TB) string {
	tb.Helper()
	u := PostgresURL()
	if u == "" {
		tb.Skip("HOOKMESH_TEST_POSTGRES_URL is not set: run the suite with `make test`, which starts PostgreSQL")
	}
	return u
}

// Client returns a MongoDB client shared by the tests of a package.
func Client(tb testing.TB) *mongo.Client {
	tb.Helper()
	uri := MongoURI(tb)
	clientOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, errClient = store.Connect(ctx, uri)
	})
	if errClient != nil {
		tb.Fatalf("connect to test MongoDB: %v", errClient)
	}
	return client
}

// DatabaseName returns a name unique to this test run, usable for databases
// and AMQP prefixes.
func DatabaseName(tb testing.TB) string {
	name := strings.ToLower(tb.Name())
	name = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, name)
	if len(name) > 24 {
		name = name[:24]
	}
	return fmt.Sprintf("t_%s_%s", name, ids.Random(5))
}

// Database returns a fresh database, dropped when the test ends.
func Database(tb testing.TB) *mongo.Database {
	tb.Helper()
	db := Client(tb).Database(DatabaseName(tb))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db
}

// Server serves h over HTTP/1.1 and unencrypted HTTP/2 (so gRPC clients
// work) until the test ends, and returns its base URL.
func Server(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv
}

// H2CClient returns an HTTP client that speaks unencrypted HTTP/2, as gRPC
// over Connect needs.
func H2CClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// SecretBox returns a box with a random key, for services that encrypt
// secrets at rest.
func SecretBox(tb testing.TB) *secretbox.Box {
	tb.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	return box
}
