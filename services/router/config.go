package router

import (
	"errors"
	"flag"
)

// Config configures the router.
type Config struct {
	// Workers is how many events are routed at once; 16 when zero.
	Workers int
	// BatchSize is how many messages are published per confirmed batch; 500
	// when zero.
	BatchSize int
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
}

// RegisterFlags declares the configuration's flags on fs, with the defaults
// of a zero Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	var d Config
	d.defaults()
	fs.IntVar(&c.Workers, "router-workers", d.Workers, "events one router expands at once")
	fs.IntVar(&c.BatchSize, "router-batch-size", d.BatchSize, "tasks and state changes the router publishes per confirmed batch")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Workers <= 0 || c.BatchSize <= 0 {
		return errors.New("HOOKMESH_ROUTER_WORKERS and HOOKMESH_ROUTER_BATCH_SIZE must be positive")
	}
	return nil
}
