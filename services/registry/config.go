// Package registry is the registry service: it owns projects, API keys,
// endpoints and subscriptions, serves RegistryService to users and
// RegistryInternalService to the other hookmesh services, and authenticates
// project API keys.
package registry

import (
	"errors"

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
	// AllowPrivateNetworks lets endpoint URLs point at loopback and private
	// addresses. Unused for now: destinations are checked at dial time by
	// the deliverer.
	AllowPrivateNetworks bool
	// RequireHTTPS refuses endpoint URLs that are not https.
	RequireHTTPS bool
	// Secrets encrypts endpoint secrets at rest. Required.
	Secrets *secretbox.Box
	// PublicURL is the base URL users reach hookmesh at, for the portal
	// links' URLs; empty uses the scheme and host of the request that
	// creates the link.
	PublicURL string
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

// Validate reports a configuration the service cannot run with.
func (c Config) Validate() error {
	if c.AdminKey == "" {
		return errors.New("registry: an admin key is required (HOOKMESH_ADMIN_KEY)")
	}
	if c.Secrets == nil {
		return errors.New("registry: a key to encrypt endpoint secrets at rest is required (HOOKMESH_SECRET_KEY)")
	}
	return nil
}
