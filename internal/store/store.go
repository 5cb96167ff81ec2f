// Package store connects to MongoDB (or FerretDB, which speaks its wire
// protocol) and holds the few helpers every service's storage needs.
//
// FerretDB has no multi-document transactions and its find-and-modify is not
// atomic under concurrent writers, so the services build on single-document
// writes and inserts with deterministic _ids, which are correct on both.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// ClientOptions are the options every client of hookmesh's databases is
// made with, so that a replica set behaves the same for every service:
//
//   - write concern majority: a write is acknowledged once a majority of
//     the members hold it (journaled, the replica set default), so an API
//     answers only once what it accepted survives the loss of the primary;
//   - read concern majority: a read returns only what a majority holds, so
//     no process acts on a write that a failover could still roll back
//     (another process's endpoint, a key revoked and then restored); on the
//     primary it still sees every write acknowledged before it;
//   - retryable writes and reads: an operation cut by an election or a
//     dropped connection is retried once on the new primary. Every write
//     hookmesh makes is a single-document write, an upsert or an insert with
//     a deterministic _id, all of which the server retries safely.
//
// A standalone server or FerretDB accepts all of these and has nothing to
// replicate: FerretDB ignores the concerns, and the driver retries only
// where the server supports sessions. Settings in the URI are overridden.
func ClientOptions(uri string) *options.ClientOptions {
	return options.Client().ApplyURI(uri).
		SetWriteConcern(writeconcern.Majority()).
		SetReadConcern(readconcern.Majority()).
		SetRetryWrites(true).
		SetRetryReads(true).
		SetServerSelectionTimeout(10 * time.Second).
		SetMaxPoolSize(64)
}

// Connect opens a client for uri with ClientOptions and checks that the
// server answers.
func Connect(ctx context.Context, uri string) (*mongo.Client, error) {
	opts := ClientOptions(uri)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("ping mongodb: %w", err)
	}
	return client, nil
}

// IsDuplicateKey reports whether err is (or contains only) duplicate-key
// write errors.
func IsDuplicateKey(err error) bool {
	if err == nil {
		return false
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		if bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return false
		}
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 {
				return false
			}
		}
		return true
	}
	return mongo.IsDuplicateKeyError(err)
}

// Index is an index to create at start-up.
type Index struct {
	Collection string
	Model      mongo.IndexModel
}

// EnsureIndexes creates the indexes; creating an existing index is a no-op.
func EnsureIndexes(ctx context.Context, db *mongo.Database, indexes []Index) error {
	for _, ix := range indexes {
		if _, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, ix.Model); err != nil {
			return fmt.Errorf("create index on %s: %w", ix.Collection, err)
		}
	}
	return nil
}
