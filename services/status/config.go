package status

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// DefaultDatabase is the MongoDB database the status service uses unless
// configured otherwise.
const DefaultDatabase = "hookmesh_status"

// Config is the status service's configuration.
type Config struct {
	// Database is the name of the MongoDB database that holds deliveries and
	// attempts. The caller opens it and passes it to New.
	Database string
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Database: DefaultDatabase}
}

// RegisterFlags registers the configuration's flags on fs, each name
// starting with prefix (for example "status.").
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.Database, prefix+"mongodb-database", DefaultDatabase,
		"MongoDB database that holds deliveries and attempts")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Database == "" {
		return errors.New("status: database name must not be empty")
	}
	// MongoDB refuses these characters in database names, and FerretDB
	// limits names to 63 bytes.
	if strings.ContainsAny(c.Database, `/\. "$`+"\x00") || len(c.Database) > 63 {
		return fmt.Errorf("status: invalid database name %q: use at most 63 letters, digits, '_' or '-'", c.Database)
	}
	return nil
}
