package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// sendError is a short message for people (stored with the attempt and shown
// in the dashboard) over the error that caused it, kept for errors.Is.
type sendError struct {
	msg string
	err error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// prefixed puts what was being done in front of err's message.
func prefixed(doing string, err error) error {
	return &sendError{msg: doing + ": " + err.Error(), err: err}
}

// invalidURL describes a URL the request could not be built with.
func invalidURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &sendError{msg: "invalid url: " + ue.Err.Error(), err: err}
	}
	return &sendError{msg: "invalid request: " + err.Error(), err: err}
}

// describe turns a transport error into a few words. parent is the caller's
// context and ctx the one with the request timeout: which of them ended
// tells a timeout from a cancellation.
func describe(parent, ctx context.Context, err error, timeout time.Duration) error {
	msg := message(parent, ctx, err, timeout)
	return &sendError{msg: msg, err: err}
}

// message is the few words describe puts over err: why the context ended,
// else the first of transportMessages that recognises err, else err's
// innermost cause.
func message(parent, ctx context.Context, err error, timeout time.Duration) string {
	switch {
	case parent.Err() != nil:
		if errors.Is(parent.Err(), context.DeadlineExceeded) {
			return "timeout: the caller's deadline passed"
		}
		return "canceled"
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return "timeout after " + timeout.String()
	}
	for _, recognise := range transportMessages {
		if msg, ok := recognise(err); ok {
			return msg
		}
	}
	return innermost(err)
}

// transportMessages describe the transport errors they recognise. They are
// tried in order: an error can match several (a refused dial is also a
// *net.OpError), and the more precise message comes first.
var transportMessages = []func(err error) (string, bool){
	dnsMessage,
	connectionMessage,
	tlsMessage,
	closedMessage,
	timeoutMessage,
	dialMessage,
}

// dnsMessage describes a failed lookup of the host's name.
func dnsMessage(err error) (string, bool) {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		return "", false
	}
	switch {
	case dnsErr.IsNotFound:
		return "dns: no such host " + dnsErr.Name, true
	case dnsErr.IsTimeout:
		return "dns: timeout looking up " + dnsErr.Name, true
	}
	return "dns: " + dnsErr.Err + " looking up " + dnsErr.Name, true
}

// connectionMessage describes a connection refused, reset, or without a
// route to the host.
func connectionMessage(err error) (string, bool) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused" + by(err), true
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset" + by(err), true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		if a := remote(err); a != "" {
			return "no route to " + a, true
		}
		return "no route to host", true
	}
	return "", false
}

// tlsMessage describes a certificate that did not verify or a server that
// does not speak TLS.
func tlsMessage(err error) (string, bool) {
	var (
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &certErr):
		return "tls: " + strings.TrimPrefix(certErr.Err.Error(), "x509: "), true
	case errors.As(err, &recErr):
		return "tls: the server did not answer with TLS", true
	}
	return "", false
}

// closedMessage describes a connection closed before the whole response.
func closedMessage(err error) (string, bool) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed by the server before a whole response", true
	}
	return "", false
}

// timeoutMessage describes a network operation that timed out.
func timeoutMessage(err error) (string, bool) {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout: " + innermost(err), true
	}
	return "", false
}

// dialMessage describes a dial that failed, with the address dialled.
func dialMessage(err error) (string, bool) {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Addr != nil {
		// Among others, a refusal by Config.DialControl.
		return "dial " + opErr.Addr.String() + ": " + innermost(err), true
	}
	return "", false
}

// by names the remote address of a network error, when it has one.
func by(err error) string {
	if a := remote(err); a != "" {
		return " by " + a
	}
	return ""
}

// remote is the remote address of a network error, or "".
func remote(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Addr != nil {
		return opErr.Addr.String()
	}
	return ""
}

// innermost drops the wrappers that repeat the method and URL
// ("Post \"https://...\": dial tcp 1.2.3.4:443: ...") and the net.OpError
// prefix, leaving the cause.
func innermost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		err = opErr.Err
	}
	return err.Error()
}
