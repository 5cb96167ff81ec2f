package webhook

import (
	"net/http"
	"time"
)

// Result is what one Send observed.
type Result struct {
	// StatusCode is the response status, 0 when no response arrived.
	StatusCode int
	// Header is the response header.
	Header http.Header
	// Body is the response body, decompressed, at most
	// Config.MaxResponseBody bytes.
	Body []byte
	// Truncated reports that the body was longer than Body.
	Truncated bool
	// Latency runs from Start to the end of the response body kept (or to
	// the error).
	Latency time.Duration
	// RemoteIP is the address of the connection used, or of the last one
	// tried when none was made; empty when DNS failed.
	RemoteIP string
	// Start is when the request was sent.
	Start time.Time
	// Err is nil when a whole response arrived. Otherwise it says, in a few
	// words, what failed: "timeout after 5s", "connection refused by
	// 10.0.0.1:443", "dns: no such host example.invalid", or "reading
	// response body: ..." when the status arrived but its body did not. It
	// wraps the underlying error for errors.Is.
	Err error
}

// Success reports a whole response with a 2xx status.
func (r Result) Success() bool {
	return r.Err == nil && r.StatusCode >= 200 && r.StatusCode <= 299
}
