package webhook

import (
	"errors"
	"syscall"
	"time"
)

// Defaults for a zero Config field and for a Request without a timeout.
const (
	// DefaultMaxResponseBody is how many bytes of a response body are kept.
	DefaultMaxResponseBody int64 = 64 << 10
	// DefaultMaxConnsPerHost bounds, and keeps idle, connections to one host.
	DefaultMaxConnsPerHost = 256
	// DefaultUserAgent is the User-Agent of every delivered request.
	DefaultUserAgent = "hookmesh/1"
	// DefaultTimeout bounds a Request whose Timeout is zero: no exchange is
	// ever left without a deadline.
	DefaultTimeout = 30 * time.Second
)

// Config is the sender's configuration. Zero fields take the defaults.
type Config struct {
	// MaxResponseBody is how many bytes of a response body are kept, counted
	// after decompression; DefaultMaxResponseBody when zero.
	MaxResponseBody int64
	// MaxConnsPerHost bounds the connections to one host and is also how many
	// stay idle for reuse; size it to the delivery concurrency.
	// DefaultMaxConnsPerHost when zero.
	MaxConnsPerHost int
	// UserAgent is sent on every request; DefaultUserAgent when empty.
	UserAgent string
	// DialControl, when set, is called for every connection after DNS has
	// resolved the host and before connecting, with the IP address to dial:
	// an error refuses the destination (the SSRF guard plugs in here, so a
	// name cannot rebind to a private address between check and use).
	DialControl func(network, address string, c syscall.RawConn) error
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		MaxResponseBody: DefaultMaxResponseBody,
		MaxConnsPerHost: DefaultMaxConnsPerHost,
		UserAgent:       DefaultUserAgent,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxResponseBody < 0 {
		return errors.New("webhook: max response body must not be negative")
	}
	if c.MaxConnsPerHost < 0 {
		return errors.New("webhook: max connections per host must not be negative")
	}
	return nil
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxResponseBody <= 0 {
		c.MaxResponseBody = d.MaxResponseBody
	}
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = d.MaxConnsPerHost
	}
	if c.UserAgent == "" {
		c.UserAgent = d.UserAgent
	}
	return c
}
