package registry

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
)

// Limits and defaults of the registry's API.
const (
	maxNameLen        = 200
	maxDescriptionLen = 1000
	maxIDLen          = 64
	maxURLLen         = 2048

	maxCustomHeaders  = 50
	maxHeaderNameLen  = 256
	maxHeaderValueLen = 4096

	defaultTimeoutSeconds = 30
	maxTimeoutSeconds     = 300
	maxRateLimitDuration  = 3600

	minSecretLen         = 8
	maxSecretLen         = 256
	maxPreviousSecretTTL = 7 * 24 * 3600
	// maxSecrets bounds the secrets an endpoint keeps while rotations overlap.
	maxSecrets = 10

	maxEventTypes   = 100
	maxEventTypeLen = 255

	defaultSignatureHeader = "X-Hookmesh-Signature"

	defaultRetryStrategy = registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL
	defaultRetryInterval = 10
	maxRetryInterval     = 86400
	defaultMaxAttempts   = 10
	maxMaxAttempts       = 100

	defaultPageSize = 50
	maxPageSize     = 500
)

// DefaultRetentionDays is how many days a project's history is kept when
// the project does not say; MaxRetentionDays is the most it may ask for.
const (
	DefaultRetentionDays = 30
	MaxRetentionDays     = 3650
)

// checkRetention checks a project's retention in days: 0 means the default.
func checkRetention(days int32) error {
	if days < 0 || days > MaxRetentionDays {
		return apierr.Invalid("retention", "must be a number of days from 1 to %d (0 for the default, %d), got %d", MaxRetentionDays, DefaultRetentionDays, days)
	}
	return nil
}

// checkText checks a free-text field: its length in characters, and no NUL,
// which PostgreSQL (under FerretDB) cannot store.
func checkText(field, s string, maxLen int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return apierr.Invalid(field, "must not be empty")
	}
	if !utf8.ValidString(s) {
		return apierr.Invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return apierr.Invalid(field, "must be at most %d characters, got %d", maxLen, n)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return apierr.Invalid(field, "must not contain NUL characters")
	}
	return nil
}

// checkID checks an id given in a request. Ids are made by ids.New, so
// anything else cannot name an existing object.
func checkID(field, id string) error {
	if id == "" {
		return apierr.Invalid(field, "must not be empty")
	}
	if !validID(id) {
		return apierr.Invalid(field, "%q is not a hookmesh id (such as \"ep_01hx...\")", truncate(id, 80))
	}
	return nil
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkURL checks an endpoint URL: absolute http or https with a host, and
// no credentials (they belong in custom headers).
func checkURL(field, raw string) error {
	if raw == "" {
		return apierr.Invalid(field, "must not be empty: give the http or https URL that receives deliveries")
	}
	if len(raw) > maxURLLen {
		return apierr.Invalid(field, "must be at most %d bytes, got %d", maxURLLen, len(raw))
	}
	u, err := url.Parse(raw)
	shown := raw
	if err == nil && u.User != nil {
		shown = u.Redacted()
	}
	if err != nil || !absoluteHTTP(u) {
		return apierr.Invalid(field, "must be an absolute http or https URL, got %q", truncate(shown, 200))
	}
	if u.User != nil {
		return apierr.Invalid(field, "must not contain user information (user:password@): send credentials in custom_headers instead")
	}
	return checkPort(field, u.Port())
}

// absoluteHTTP reports whether u is an absolute http or https URL with a
// host.
func absoluteHTTP(u *url.URL) bool {
	return u.IsAbs() && u.Opaque == "" && u.Hostname() != "" &&
		(strings.EqualFold(u.Scheme, "http") || strings.EqualFold(u.Scheme, "https"))
}

// checkPort checks a URL's port, when it has one: url.Parse accepts any
// digits.
func checkPort(field, p string) error {
	if p == "" {
		return nil
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return apierr.Invalid(field, "port must be between 1 and 65535, got %q", p)
	}
	return nil
}

// checkEndpointURL is checkURL plus the deployment's rule that endpoints
// must use https, when it has one.
func (s *Service) checkEndpointURL(field, raw string) error {
	if err := checkURL(field, raw); err != nil {
		return err
	}
	if s.cfg.RequireHTTPS && !strings.HasPrefix(strings.ToLower(raw), "https://") {
		return apierr.Invalid(field, "must be an https URL: this hookmesh requires https endpoints (HOOKMESH_REQUIRE_HTTPS)")
	}
	return nil
}

// validToken reports whether s is an HTTP token (RFC 9110 section 5.6.2),
// the syntax of header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// reservedHeader reports whether hookmesh or the HTTP transport owns a
// header, so that a user may not set it.
func reservedHeader(name string) bool {
	lower := strings.ToLower(name)
	switch lower {
	case "host", "content-length", "content-type", "transfer-encoding", "connection",
		"upgrade", "te", "trailer", "keep-alive",
		// The deliverer sends the W3C trace context of the event.
		"traceparent", "tracestate":
		return true
	}
	return strings.HasPrefix(lower, "proxy-") ||
		strings.HasPrefix(lower, "webhook-") ||
		strings.HasPrefix(lower, "x-hookmesh-")
}

// checkCustomHeaders checks an endpoint's custom headers and returns them
// sorted by name. signatureHeader is the project's signature header, which
// a custom header may not shadow either.
func checkCustomHeaders(h map[string]string, signatureHeader string) ([]headerDoc, error) {
	if len(h) > maxCustomHeaders {
		return nil, apierr.Invalid("custom_headers", "must have at most %d headers, got %d", maxCustomHeaders, len(h))
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := make(map[string]string, len(h))
	out := make([]headerDoc, 0, len(h))
	for _, name := range names {
		field := fmt.Sprintf("custom_headers[%q]", truncate(name, 80))
		if len(name) > maxHeaderNameLen || !validToken(name) {
			return nil, apierr.Invalid(field, "is not a valid HTTP header name: use letters, digits and !#$%%&'*+-.^_`|~")
		}
		if reservedHeader(name) {
			return nil, apierr.Invalid(field, "is set by hookmesh or the HTTP transport and cannot be a custom header")
		}
		if strings.EqualFold(name, signatureHeader) {
			return nil, apierr.Invalid(field, "is the project's signature header and cannot be a custom header")
		}
		lower := strings.ToLower(name)
		if other, ok := seen[lower]; ok {
			return nil, apierr.Invalid(field, "repeats %q: header names are case-insensitive", other)
		}
		seen[lower] = name
		value := h[name]
		if len(value) > maxHeaderValueLen {
			return nil, apierr.Invalid(field, "value must be at most %d bytes, got %d", maxHeaderValueLen, len(value))
		}
		for i := range len(value) {
			// CR and LF would split the header; NUL and the other controls
			// are refused by HTTP clients at send time.
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, apierr.Invalid(field, "value must not contain CR, LF, NUL or other control characters")
			}
		}
		out = append(out, headerDoc{Name: name, Value: value})
	}
	return out, nil
}

// checkSignature checks a project's signature settings, with defaults.
func checkSignature(s *registryv1.SignatureSettings) (signatureDoc, error) {
	d := signatureDoc{Header: defaultSignatureHeader}
	if s == nil {
		return d, nil
	}
	if s.Header != "" {
		if len(s.Header) > maxHeaderNameLen || !validToken(s.Header) {
			return d, apierr.Invalid("signature.header", "must be a valid HTTP header name, got %q", truncate(s.Header, 80))
		}
		if reservedHeader(s.Header) && !strings.EqualFold(s.Header, defaultSignatureHeader) {
			return d, apierr.Invalid("signature.header", "%q is set by hookmesh or the HTTP transport: choose another name, such as %q", s.Header, defaultSignatureHeader)
		}
		d.Header = s.Header
	}
	d.Advanced = s.Advanced
	return d, nil
}

// checkRetryPolicy checks a retry policy; zero fields take the defaults.
func checkRetryPolicy(field string, p *registryv1.RetryPolicy) (retryDoc, error) {
	d := retryDoc{Strategy: strategyName(defaultRetryStrategy), IntervalSeconds: defaultRetryInterval, MaxAttempts: defaultMaxAttempts}
	if p == nil {
		return d, nil
	}
	switch p.Strategy {
	case registryv1.RetryStrategy_RETRY_STRATEGY_UNSPECIFIED:
	case registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL:
		d.Strategy = strategyName(p.Strategy)
	default:
		return d, apierr.Invalid(field+".strategy", "must be RETRY_STRATEGY_LINEAR or RETRY_STRATEGY_EXPONENTIAL, got %d", int32(p.Strategy))
	}
	if p.IntervalSeconds != 0 {
		if p.IntervalSeconds > maxRetryInterval {
			return d, apierr.Invalid(field+".interval_seconds", "must be between 1 and %d, got %d", maxRetryInterval, p.IntervalSeconds)
		}
		d.IntervalSeconds = int64(p.IntervalSeconds)
	}
	if p.MaxAttempts != 0 {
		if p.MaxAttempts > maxMaxAttempts {
			return d, apierr.Invalid(field+".max_attempts", "must be between 1 and %d, got %d", maxMaxAttempts, p.MaxAttempts)
		}
		d.MaxAttempts = int64(p.MaxAttempts)
	}
	return d, nil
}

// checkRateLimit checks a rate limit; nil or all zero means none.
func checkRateLimit(r *registryv1.RateLimit) (*rateLimitDoc, error) {
	if r == nil || (r.Count == 0 && r.DurationSeconds == 0) {
		return nil, nil
	}
	if r.Count < 1 {
		return nil, apierr.Invalid("rate_limit.count", "must be at least 1 when rate_limit is set")
	}
	if r.DurationSeconds < 1 || r.DurationSeconds > maxRateLimitDuration {
		return nil, apierr.Invalid("rate_limit.duration_seconds", "must be between 1 and %d, got %d", maxRateLimitDuration, r.DurationSeconds)
	}
	return &rateLimitDoc{Count: int64(r.Count), DurationSeconds: int64(r.DurationSeconds)}, nil
}

// checkTimeout checks an endpoint's request timeout; zero is the default.
func checkTimeout(seconds uint32) (int64, error) {
	if seconds == 0 {
		return defaultTimeoutSeconds, nil
	}
	if seconds > maxTimeoutSeconds {
		return 0, apierr.Invalid("timeout_seconds", "must be between 1 and %d, got %d", maxTimeoutSeconds, seconds)
	}
	return int64(seconds), nil
}

// checkSecret checks a signing secret given by the user, without echoing it.
func checkSecret(field, s string) error {
	if n := len(s); n < minSecretLen || n > maxSecretLen {
		return apierr.Invalid(field, "must be %d to %d characters long, got %d (leave it empty to have one generated)", minSecretLen, maxSecretLen, n)
	}
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return apierr.Invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// checkEventTypes checks a subscription's event-type patterns.
func checkEventTypes(field string, types []string) error {
	if len(types) > maxEventTypes {
		return apierr.Invalid(field, "must have at most %d entries, got %d", maxEventTypes, len(types))
	}
	for i, t := range types {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case t == "":
			return apierr.Invalid(f, "must not be empty: use \"*\" for every event type")
		case len(t) > maxEventTypeLen:
			return apierr.Invalid(f, "must be at most %d characters, got %d", maxEventTypeLen, len(t))
		case !validEventTypePattern(t):
			return apierr.Invalid(f, "%q is not an event type: use letters, digits and . _ - : /, \"*\" alone for every type, or a trailing \".*\" for a prefix such as \"invoice.*\"", truncate(t, 80))
		}
	}
	return nil
}

// validEventTypePattern reports whether t is "*", an event type name, or a
// name followed by ".*".
func validEventTypePattern(t string) bool {
	if t == "*" {
		return true
	}
	name, _ := strings.CutSuffix(t, ".*")
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == ':' || c == '/':
		default:
			return false
		}
	}
	return true
}

// pageSize returns the number of items a list call returns.
// pageParams reads a list request's page size and token.
func pageParams(n uint32, token string) (size int, after string, err error) {
	if size, err = pageSize(n); err != nil {
		return 0, "", err
	}
	if after, err = decodePageToken(token); err != nil {
		return 0, "", err
	}
	return size, after, nil
}

func pageSize(n uint32) (int, error) {
	if n == 0 {
		return defaultPageSize, nil
	}
	if n > maxPageSize {
		return 0, apierr.Invalid("page_size", "must be at most %d, got %d", maxPageSize, n)
	}
	return int(n), nil
}

// encodePageToken makes the page token that continues after id.
func encodePageToken(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// decodePageToken returns the id a page token continues after ("" for the
// first page).
func decodePageToken(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !validID(string(b)) {
		return "", apierr.Invalid("page_token", "is not a token returned by a previous call: pass next_page_token unchanged, or leave it empty for the first page")
	}
	return string(b), nil
}
