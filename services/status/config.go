package status

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// DefaultDatabase is the MongoDB database the status service uses unless
// configured otherwise.
const DefaultDatabase = "hookmesh_status"

// Config is the status service's configuration.
type Config struct {
	// Database is the name of the MongoDB database that holds deliveries and
	// attempts when they are not kept in PostgreSQL (WithPostgres). The
	// caller opens it and passes it to New.
	Database string
	// BatchSize is the most state changes of one partition applied together;
	// 5000 when zero.
	BatchSize int
	// BatchWait is how long a batch gathers changes once it has one; 1 s
	// when zero. A delivery usually goes from SCHEDULED to its outcome well
	// within this time, so its changes coalesce into one insert: on FerretDB
	// an insert is cheap and an update scans the collection. It is also how
	// far behind the status API may lag.
	BatchWait time.Duration
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Database: DefaultDatabase, BatchSize: 5000, BatchWait: time.Second}
}

func (c *Config) defaults() {
	d := DefaultConfig()
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = d.BatchWait
	}
}

// RegisterFlags declares the configuration's flags on fs, with the
// defaults of DefaultConfig. The database is named by the process's
// database prefix, not by a flag.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.BatchSize, "status-batch-size", d.BatchSize, "most state changes of one status partition written together")
	fs.DurationVar(&c.BatchWait, "status-batch-wait", d.BatchWait, "how long the status service gathers state changes before writing them")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.BatchSize <= 0 || c.BatchWait <= 0 {
		return errors.New("HOOKMESH_STATUS_BATCH_SIZE and HOOKMESH_STATUS_BATCH_WAIT must be positive")
	}
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
