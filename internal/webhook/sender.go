// Package webhook sends delivered webhooks over HTTP: one shared transport
// with a connection pool sized to the delivery concurrency, a client span and
// traceparent on every request, redirects never followed, a timeout over the
// whole exchange and a cap on the response body kept.
package webhook

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// drainLimit is how much more of a truncated response body is read and
// discarded so that its connection can go back to the pool; a larger rest
// closes the connection instead.
const drainLimit = 256 << 10

// hopHeaders are dropped from Request.Header: they belong to the transport,
// not to the event. Accept-Encoding in particular would stop the transport
// from decompressing, and the cap must apply to the decompressed body.
var hopHeaders = map[string]bool{
	"Accept-Encoding":   true,
	"Connection":        true,
	"Content-Length":    true,
	"Host":              true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Te":                true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
}

// Sender posts webhooks. It is safe for concurrent use; build one per
// process and share it, so that connections to an endpoint are reused.
type Sender struct {
	cfg       Config
	transport *http.Transport
	client    *http.Client
}

// NewSender builds a Sender around one http.Transport.
func NewSender(cfg Config, opts ...Option) *Sender {
	cfg = cfg.withDefaults()
	o := newOptions(opts)

	dialer := &net.Dialer{KeepAlive: 30 * time.Second, Control: cfg.DialControl}
	transport := &http.Transport{
		// No proxy from the environment: the dial-time destination check must
		// see the endpoint's address, not a proxy's.
		Proxy:             nil,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		MaxConnsPerHost:   cfg.MaxConnsPerHost,
		// Go keeps 2 idle connections a host by default: with more deliveries
		// in flight to one endpoint, almost every request would reconnect.
		MaxIdleConnsPerHost:   cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Sender{
		cfg:       cfg,
		transport: transport,
		client: &http.Client{
			Transport: otelhttp.NewTransport(transport,
				otelhttp.WithTracerProvider(o.tracerProvider),
				otelhttp.WithMeterProvider(o.meterProvider),
				otelhttp.WithPropagators(o.propagator),
			),
			// A 3xx is the endpoint's answer, recorded as such: following it
			// would POST the event somewhere the user did not register.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Request is one webhook to post.
type Request struct {
	// URL is the endpoint.
	URL string
	// Body is sent byte for byte, as application/json.
	Body []byte
	// Header is added to the request (signatures, event headers). The
	// sender sets Content-Type and User-Agent itself and drops hop-by-hop
	// headers such as Connection and Accept-Encoding.
	Header http.Header
	// Timeout bounds the whole exchange, from dialing to reading the kept
	// part of the response body; DefaultTimeout when zero.
	Timeout time.Duration
}

// Send posts req and returns what happened; it never returns early without
// a Result. The body read is capped at Config.MaxResponseBody.
func (s *Sender) Send(ctx context.Context, req Request) Result {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var remote remoteAddr
	ctx = httptrace.WithClientTrace(ctx, remote.trace())

	res := Result{Start: time.Now()}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		res.Err = invalidURL(err)
		return res
	}
	for name, values := range req.Header {
		if hopHeaders[http.CanonicalHeaderKey(name)] {
			continue
		}
		for _, v := range values {
			hreq.Header.Add(name, v) // canonical names, so Set below replaces
		}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", s.cfg.UserAgent)

	resp, err := s.client.Do(hreq)
	if err != nil {
		res.Latency = time.Since(res.Start)
		res.RemoteIP = remote.ip()
		res.Err = describe(parent, ctx, err, timeout)
		return res
	}
	defer resp.Body.Close()
	res.RemoteIP = remote.ip()
	res.StatusCode = resp.StatusCode
	res.Header = resp.Header

	// The transport decompresses gzip it asked for as the body is read, so
	// the limit counts decompressed bytes and a bomb never inflates past it.
	limit := s.cfg.MaxResponseBody
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	res.Latency = time.Since(res.Start)
	if int64(len(body)) > limit {
		body, res.Truncated = body[:limit:limit], true
	}
	res.Body = body
	if err != nil {
		res.Err = prefixed("reading response body", describe(parent, ctx, err, timeout))
		return res
	}
	if res.Truncated {
		// Read a little more so a slightly-too-long body still lets the
		// connection be reused; past drainLimit, Close drops the connection.
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	return res
}

// Close closes the idle connections. Sends in flight finish; the Sender
// stays usable.
func (s *Sender) Close() {
	s.transport.CloseIdleConnections()
}

// remoteAddr records the address a request used. The trace callbacks can run
// on the transport's dial goroutines, hence the lock.
type remoteAddr struct {
	mu        sync.Mutex
	got       string // GotConn: the connection used
	attempted string // ConnectStart: the last address dialed, for failures
}

func (r *remoteAddr) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		ConnectStart: func(_, addr string) {
			r.mu.Lock()
			r.attempted = addr
			r.mu.Unlock()
		},
		GotConn: func(info httptrace.GotConnInfo) {
			if a := info.Conn.RemoteAddr(); a != nil {
				r.mu.Lock()
				r.got = a.String()
				r.mu.Unlock()
			}
		},
	}
}

// ip returns the IP of the connection used, or of the last dial attempt
// when no connection was made.
func (r *remoteAddr) ip() string {
	r.mu.Lock()
	addr := r.got
	if addr == "" {
		addr = r.attempted
	}
	r.mu.Unlock()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
