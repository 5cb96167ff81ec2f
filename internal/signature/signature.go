// Package signature signs delivered webhooks and verifies them: the Standard
// Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) and a
// Convoy-style HMAC header, with several secrets while one rotates.
//
// Standard Webhooks: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
// Convoy: https://docs.getconvoy.io/product-manual/signatures
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names and defaults.
const (
	// HeaderID is the Standard Webhooks message id, the same on every attempt.
	HeaderID = "webhook-id"
	// HeaderTimestamp is the Standard Webhooks timestamp, in Unix seconds.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature is the Standard Webhooks signature list.
	HeaderSignature = "webhook-signature"
	// DefaultConvoyHeader is the Convoy-style header when Options.Header is empty.
	DefaultConvoyHeader = "X-Hookmesh-Signature"
	// DefaultTolerance is how far a receiver should let a timestamp drift
	// from its clock, as the Standard Webhooks libraries do.
	DefaultTolerance = 5 * time.Minute

	// standardPrefix marks a Standard Webhooks secret: the key is the base64
	// after it.
	standardPrefix = "whsec_"
)

// Errors returned by the verifiers, for errors.Is.
var (
	// ErrMissingHeader means a header the scheme needs is absent or empty.
	ErrMissingHeader = errors.New("missing signature header")
	// ErrMalformed means a signature or timestamp header cannot be parsed.
	ErrMalformed = errors.New("malformed signature header")
	// ErrTimestamp means the signed timestamp is outside the tolerance.
	ErrTimestamp = errors.New("timestamp outside tolerance")
	// ErrNoMatch means no signature in the header matches the secret.
	ErrNoMatch = errors.New("no matching signature")
)

// Secret is one signing secret as the user sees it: "whsec_" + base64
// (Standard Webhooks), or any other string.
type Secret string

// Validate reports whether s can sign: it is not empty and, when it has the
// "whsec_" prefix, the rest is valid standard base64.
func (s Secret) Validate() error {
	if s == "" {
		return errors.New("secret is empty")
	}
	if s.IsEd25519() {
		if _, err := ParsePrivateKey(string(s)); err != nil {
			return fmt.Errorf("Ed25519 private key: %w", err)
		}
		return nil
	}
	if rest, ok := strings.CutPrefix(string(s), standardPrefix); ok {
		if _, err := base64.StdEncoding.DecodeString(rest); err != nil {
			return fmt.Errorf("secret has the %q prefix but the rest is not standard base64: %w", standardPrefix, err)
		}
	}
	return nil
}

// standardKey is the HMAC key of the Standard Webhooks signature: the decoded
// base64 after "whsec_". A secret without the prefix, or whose base64 does
// not decode (Validate rejects those), signs with its raw bytes, so Sign
// never fails and VerifyStandard agrees with it.
func (s Secret) standardKey() []byte {
	if rest, ok := strings.CutPrefix(string(s), standardPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(s)
}

// convoyKey is the HMAC key of the Convoy-style signature: the secret
// string's raw bytes, prefix and all, as Convoy does.
func (s Secret) convoyKey() []byte { return []byte(s) }

// Options chooses the Convoy-style header.
type Options struct {
	// Header names the Convoy-style header; DefaultConvoyHeader when empty.
	Header string
	// Advanced selects "t=<unix>,v1=<hex>[,v1=<hex>...]" over the
	// timestamp and body instead of the hex of the body alone.
	Advanced bool
}

func (o Options) header() string {
	if o.Header == "" {
		return DefaultConvoyHeader
	}
	return o.Header
}

// Sign sets the headers of one request on h: webhook-id, webhook-timestamp,
// webhook-signature (Standard Webhooks v1, "v1,<base64>" for each HMAC
// secret, "v1a,<base64>" Ed25519 for each "whsk_" private key,
// space-separated, current first) and, for the HMAC secrets, the Convoy-style header (simple: the
// lowercase hex HMAC-SHA256 of the body for each secret, comma-separated;
// advanced: "t=<unix>,v1=<hex>[,v1=<hex>...]" over "<unix>,<body>"). With no
// secrets only webhook-id and webhook-timestamp are set.
func Sign(h http.Header, opts Options, msgID string, ts time.Time, body []byte, secrets []Secret) {
	unix := strconv.FormatInt(ts.Unix(), 10)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, unix)
	if len(secrets) == 0 {
		h.Del(HeaderSignature)
		h.Del(opts.header())
		return
	}

	var std, convoy strings.Builder
	hmacs := 0
	for _, s := range secrets {
		if s.IsEd25519() {
			sig := ed25519Signature(s, msgID, unix, body)
			if sig == nil {
				continue
			}
			if std.Len() > 0 {
				std.WriteByte(' ')
			}
			std.WriteString("v1a,")
			std.WriteString(base64.StdEncoding.EncodeToString(sig))
			continue
		}
		if std.Len() > 0 {
			std.WriteByte(' ')
		}
		if hmacs > 0 {
			convoy.WriteByte(',')
		}
		hmacs++
		std.WriteString("v1,")
		std.WriteString(base64.StdEncoding.EncodeToString(standardMAC(s.standardKey(), msgID, unix, body)))
		if opts.Advanced {
			convoy.WriteString("v1=")
			convoy.WriteString(hex.EncodeToString(convoyAdvancedMAC(s.convoyKey(), unix, body)))
		} else {
			convoy.WriteString(hex.EncodeToString(convoySimpleMAC(s.convoyKey(), body)))
		}
	}
	if std.Len() > 0 {
		h.Set(HeaderSignature, std.String())
	} else {
		h.Del(HeaderSignature)
	}
	if hmacs == 0 {
		// Ed25519 keys only: the Convoy-style header is HMAC, it has no
		// asymmetric form.
		h.Del(opts.header())
		return
	}
	if opts.Advanced {
		h.Set(opts.header(), "t="+unix+","+convoy.String())
	} else {
		h.Set(opts.header(), convoy.String())
	}
}

// standardMAC is HMAC-SHA256 of "<id>.<unix>.<body>".
func standardMAC(key []byte, msgID, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	writeString(m, msgID)
	writeString(m, ".")
	writeString(m, unix)
	writeString(m, ".")
	m.Write(body)
	return m.Sum(nil)
}

// convoySimpleMAC is HMAC-SHA256 of the body.
func convoySimpleMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// convoyAdvancedMAC is HMAC-SHA256 of "<unix>,<body>".
func convoyAdvancedMAC(key []byte, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	writeString(m, unix)
	writeString(m, ",")
	m.Write(body)
	return m.Sum(nil)
}

// writeString feeds s to the MAC without joining it to the body first, so a
// large body is not copied.
func writeString(h hash.Hash, s string) { h.Write([]byte(s)) }
