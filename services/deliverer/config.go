package deliverer

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures the deliverer.
type Config struct {
	// Concurrency is how many requests are in flight at once; 64 when zero.
	Concurrency int
	// PublishTimeout bounds the wait for the broker's confirm of a state
	// change; 60 s when zero.
	PublishTimeout time.Duration
	// Breaker sets the per-endpoint circuit breaker.
	Breaker BreakerConfig
	// ProcessingAfter is how long a request runs before its delivery is
	// reported PROCESSING; 500 ms when zero.
	ProcessingAfter time.Duration
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 60 * time.Second
	}
	if c.ProcessingAfter <= 0 {
		c.ProcessingAfter = 500 * time.Millisecond
	}
	c.Breaker = c.Breaker.withDefaults()
}

// RegisterFlags declares the configuration's flags on fs, with the defaults
// of a zero Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	var d Config
	d.defaults()
	fs.IntVar(&c.Concurrency, "delivery-concurrency", d.Concurrency, "webhooks one deliverer sends at once")
	fs.DurationVar(&c.PublishTimeout, "deliverer-publish-timeout", d.PublishTimeout, "how long a deliverer waits for the broker's confirm of an outcome before it gives the task back")
	fs.DurationVar(&c.ProcessingAfter, "deliverer-processing-after", d.ProcessingAfter, "how long a request runs before its delivery is reported PROCESSING")
	fs.Float64Var(&c.Breaker.FailureRatio, "breaker-failure-ratio", d.Breaker.FailureRatio, "share of an endpoint's attempts within the breaker window that, failing, opens its circuit; negative turns the breaker off")
	fs.IntVar(&c.Breaker.MinRequests, "breaker-min-requests", d.Breaker.MinRequests, "attempts the breaker window must hold before the failure ratio counts")
	fs.DurationVar(&c.Breaker.Window, "breaker-window", d.Breaker.Window, "how far back the circuit breaker counts attempts")
	fs.DurationVar(&c.Breaker.Cooldown, "breaker-cooldown", d.Breaker.Cooldown, "how long an open circuit waits before a probe; doubles after each failed probe")
	fs.DurationVar(&c.Breaker.MaxCooldown, "breaker-max-cooldown", d.Breaker.MaxCooldown, "longest an open circuit waits before a probe")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Concurrency <= 0 || c.PublishTimeout <= 0 || c.ProcessingAfter <= 0 {
		return errors.New("HOOKMESH_DELIVERY_CONCURRENCY, _DELIVERER_PUBLISH_TIMEOUT and _DELIVERER_PROCESSING_AFTER must be positive")
	}
	if c.Breaker.FailureRatio > 1 {
		return fmt.Errorf("HOOKMESH_BREAKER_FAILURE_RATIO %v: want a share of attempts between 0 and 1 (negative turns the breaker off)", c.Breaker.FailureRatio)
	}
	if c.Breaker.MinRequests < 0 || c.Breaker.Window < 0 || c.Breaker.Cooldown < 0 || c.Breaker.MaxCooldown < 0 {
		return errors.New("HOOKMESH_BREAKER_MIN_REQUESTS, _WINDOW, _COOLDOWN and _MAX_COOLDOWN must not be negative")
	}
	return nil
}
