// Package ingest accepts events: it authenticates the project's key,
// validates, stores the event (de-duplicated by idempotency key), publishes
// it to RabbitMQ with a publisher confirm, and answers only once the event is
// durable.
package ingest

import (
	"errors"
	"flag"
	"time"
)

// Config configures the ingest service.
type Config struct {
	// MaxPayloadBytes caps an event's data; 1 MiB when zero.
	MaxPayloadBytes int
	// PublishTimeout bounds how long a request waits for the broker's
	// confirm; 30 s when zero.
	PublishTimeout time.Duration
	// AbandonedClaimAfter is how old an idempotency claim without its event
	// must be before a repeat of the request takes it over (the first request
	// died between claiming the key and storing the event); 15 s when zero.
	// Taking over early is harmless: the repeat stores the event under the
	// claimed id, and whichever insert comes second finds it there.
	AbandonedClaimAfter time.Duration
	// SweepInterval is how often events stored but not confirmed by the
	// broker are published again; 15 s when zero.
	SweepInterval time.Duration
	// SweepGrace is how old such an event must be (its own request may
	// still be publishing it); 30 s when zero.
	SweepGrace time.Duration
	// SweepLookback is how far back the sweeper looks; 24 h when zero.
	SweepLookback time.Duration
	// Sources configures the consumption of the registry's sources.
	Sources SourcesConfig
}

func (c *Config) defaults() {
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = 1 << 20
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.AbandonedClaimAfter <= 0 {
		c.AbandonedClaimAfter = 15 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 15 * time.Second
	}
	if c.SweepGrace <= 0 {
		c.SweepGrace = 30 * time.Second
	}
	if c.SweepLookback <= 0 {
		c.SweepLookback = 24 * time.Hour
	}
}

// RegisterFlags declares the configuration's flags on fs, with the defaults
// of a zero Config.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	var d Config
	d.defaults()
	fs.IntVar(&c.MaxPayloadBytes, "max-event-bytes", d.MaxPayloadBytes, "largest event payload accepted")
	fs.DurationVar(&c.PublishTimeout, "ingest-publish-timeout", d.PublishTimeout, "how long a create call waits for the broker's confirm before answering Unavailable (the event stays in the outbox)")
	fs.DurationVar(&c.AbandonedClaimAfter, "ingest-abandoned-claim-after", d.AbandonedClaimAfter, "how old an idempotency key's claim without its event must be before a repeated request takes it over")
	fs.DurationVar(&c.SweepInterval, "outbox-sweep-interval", d.SweepInterval, "how often ingest publishes again the events the broker did not confirm")
	fs.DurationVar(&c.SweepGrace, "outbox-grace", d.SweepGrace, "how old an unconfirmed event must be before it is published again")
	var sd SourcesConfig
	sd.defaults()
	fs.DurationVar(&c.Sources.PollInterval, "source-poll-interval", sd.PollInterval, "how often ingest reads the list of sources (RabbitMQ queues it consumes) and sends their counters; a registry change is seen at once")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxPayloadBytes <= 0 || c.PublishTimeout <= 0 || c.AbandonedClaimAfter <= 0 || c.SweepInterval <= 0 || c.SweepGrace <= 0 {
		return errors.New("HOOKMESH_MAX_EVENT_BYTES, _INGEST_PUBLISH_TIMEOUT, _INGEST_ABANDONED_CLAIM_AFTER, _OUTBOX_SWEEP_INTERVAL and _OUTBOX_GRACE must be positive")
	}
	return nil
}
