// Package registry is the registry service: it owns projects, API keys,
// endpoints and subscriptions, serves RegistryService to users and
// RegistryInternalService to the other hookmesh services, and authenticates
// project API keys.
package registry

import (
	"errors"
	"flag"
	"fmt"
	"net/url"

	"github.com/hookmesh/hookmesh/internal/secretbox"
)

// DefaultDatabase is the name of the registry's MongoDB database.
const DefaultDatabase = "hookmesh_registry"

// Config configures the registry service.
type Config struct {
	// Database is the name of the MongoDB database the caller opens for the
	// service; DefaultDatabase when empty.
	Database string
	// AdminKey is the bearer key that manages projects and calls
	// RegistryInternalService.
	AdminKey string
	// RequireHTTPS refuses endpoint URLs that are not https.
	RequireHTTPS bool
	// SecretKey encrypts endpoint secrets at rest: 32 bytes, hex or base64.
	// New builds Secrets from it when Secrets is nil.
	SecretKey string
	// Secrets encrypts endpoint secrets at rest. Required unless SecretKey
	// is set.
	Secrets *secretbox.Box
	// PublicURL is the base URL users reach hookmesh at, for the portal
	// links' URLs; empty uses the scheme and host of the request that
	// creates the link.
	PublicURL string
	// Notify, when set, is called after every successful change of a
	// project and before the call answers, so that when a client sees its
	// change acknowledged, the caches that could hide it are already being
	// dropped.
	Notify Notifier
	// EmitMeta, when set, sends the projects' endpoint.* meta events.
	EmitMeta MetaEmitter
	// QueuePrefix is the prefix of hookmesh's own RabbitMQ exchanges and
	// queues (HOOKMESH_AMQP_PREFIX); a source may not name a queue under it.
	// "hookmesh" when empty.
	QueuePrefix string
}

// DatabaseName returns the database name to open, with the default applied.
func (c Config) DatabaseName() string {
	if c.Database == "" {
		return DefaultDatabase
	}
	return c.Database
}

// RegisterFlags declares the configuration's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.SecretKey, "secret-key", "", "32-byte key (hex or base64) encrypting endpoint secrets at rest; the registry refuses to start without it, or with one that cannot open the secrets already stored")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL users reach hookmesh at (https://hooks.example.com), for the customer portal links CreatePortalLink returns")
	fs.BoolVar(&c.RequireHTTPS, "require-https", false, "refuse endpoint URLs that are not https")
}

// Validate reports a configuration the service cannot run with, saying
// what to set.
func (c Config) Validate() error {
	if c.AdminKey == "" {
		return errors.New("registry: an admin key is required (HOOKMESH_ADMIN_KEY)")
	}
	if c.Secrets == nil {
		if c.SecretKey == "" {
			return errors.New("HOOKMESH_SECRET_KEY (-secret-key) is not set: the registry encrypts endpoint secrets at rest with it; generate one with `openssl rand -base64 32` (`make run` keeps one in .hookmesh/secret-key)")
		}
		if _, err := secretbox.ParseKey(c.SecretKey); err != nil {
			return fmt.Errorf("HOOKMESH_SECRET_KEY: %w", err)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("HOOKMESH_PUBLIC_URL %q: want an http or https URL such as https://hooks.example.com, with no query or fragment", c.PublicURL)
		}
	}
	return nil
}
