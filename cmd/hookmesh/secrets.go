package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/internal/store"
	"github.com/hookmesh/hookmesh/services/registry"
)

// commands are hookmesh's maintenance commands, run instead of services.
var commands = map[string]func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error{
	"reset-secrets": resetSecrets,
	"reseal":        reseal,
}

// openBox parses a secret key setting.
func openBox(name, key string) (*secretbox.Box, error) {
	if key == "" {
		return nil, fmt.Errorf("%s is not set", name)
	}
	k, err := secretbox.ParseKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return secretbox.New(k)
}

// resetSecrets gives every endpoint a new secret sealed with the current
// key: the way out when the key the secrets were sealed with is lost. The
// new secrets are written to stdout, one JSON object a line, for the
// endpoints' owners.
func resetSecrets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, rest, err := parseOptions("hookmesh reset-secrets", args, getenv, stderr,
		"usage: hookmesh reset-secrets [flags] > .hookmesh/new-secrets.jsonl\n"+
			"Gives every endpoint a new signing secret sealed with HOOKMESH_SECRET_KEY and writes them to stdout.")
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("reset-secrets takes no arguments, got %q", rest)
	}
	box, err := openBox("HOOKMESH_SECRET_KEY (-secret-key)", o.cfg.Registry.SecretKey)
	if err != nil {
		return err
	}
	db, closeDB, err := registryDB(ctx, o)
	if err != nil {
		return err
	}
	defer closeDB()
	enc := json.NewEncoder(stdout)
	n, err := registry.ResetSecrets(ctx, db, box, func(s registry.NewSecret) error { return enc.Encode(s) })
	fmt.Fprintf(stderr, "hookmesh: gave %d endpoints of %s a new secret sealed with the current key.\n", n, db.Name())
	if n > 0 {
		fmt.Fprintln(stderr, "hookmesh: their previous secrets no longer sign: give each endpoint's owner the new secret written above (one JSON line per endpoint; an Ed25519 endpoint's line has its new public_key for the receiver), or let them choose one with RotateEndpointSecret.")
	}
	return err
}

// reseal seals every endpoint secret again with the current key, opening
// it with the old one: the way to change the secret key.
func reseal(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, rest, err := parseOptions("hookmesh reseal", args, getenv, stderr,
		"usage: hookmesh reseal -old-secret-key OLD_KEY [flags]\n"+
			"Re-seals every endpoint secret sealed with -old-secret-key under -secret-key (HOOKMESH_SECRET_KEY).",
		scopeReseal)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("reseal takes no arguments, got %q", rest)
	}
	oldBox, err := openBox("HOOKMESH_OLD_SECRET_KEY (-old-secret-key)", o.oldSecretKey)
	if err != nil {
		return err
	}
	newBox, err := openBox("HOOKMESH_SECRET_KEY (-secret-key)", o.cfg.Registry.SecretKey)
	if err != nil {
		return err
	}
	db, closeDB, err := registryDB(ctx, o)
	if err != nil {
		return err
	}
	defer closeDB()
	n, err := registry.Reseal(ctx, db, oldBox, newBox)
	fmt.Fprintf(stdout, "hookmesh: re-sealed the secrets of %d endpoints of %s with the current key.\n", n, db.Name())
	return err
}

// registryDB connects to the registry's database of o; closeDB disconnects.
func registryDB(ctx context.Context, o *options) (db *mongo.Database, closeDB func(), err error) {
	client, err := store.Connect(ctx, o.cfg.MongoURI)
	if err != nil {
		return nil, nil, err
	}
	return client.Database(o.cfg.DatabasePrefix + "_registry"), func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }, nil
}
