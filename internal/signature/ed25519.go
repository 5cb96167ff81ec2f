package signature

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Ed25519 key prefixes, as Standard Webhooks names them.
const (
	// PrivateKeyPrefix marks an Ed25519 private key: "whsk_" and the
	// standard base64 of the 64-byte private key or of its 32-byte seed. A
	// Secret with this prefix signs "v1a" instead of "v1".
	PrivateKeyPrefix = "whsk_"
	// PublicKeyPrefix marks an Ed25519 public key: "whpk_" and the standard
	// base64 of the 32-byte public key.
	PublicKeyPrefix = "whpk_"
)

// IsEd25519 reports whether s is an Ed25519 private key (it has the "whsk_"
// prefix) rather than an HMAC secret.
func (s Secret) IsEd25519() bool { return strings.HasPrefix(string(s), PrivateKeyPrefix) }

// ParsePrivateKey decodes "whsk_<base64>" of a 64-byte Ed25519 private key
// or a 32-byte seed.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	rest, ok := strings.CutPrefix(s, PrivateKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("an Ed25519 private key starts with %q", PrivateKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("the part after %q is not standard base64: %w", PrivateKeyPrefix, err)
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		key := ed25519.PrivateKey(b)
		// The second half of a private key is its public key: check it, so a
		// corrupted key is refused instead of signing what nobody verifies.
		if !key.Public().(ed25519.PublicKey).Equal(ed25519.NewKeyFromSeed(b[:ed25519.SeedSize]).Public()) {
			return nil, errors.New("the 64-byte private key's second half is not the public key of its first half")
		}
		return key, nil
	default:
		return nil, fmt.Errorf("the key is %d bytes, want %d (private key) or %d (seed)", len(b), ed25519.PrivateKeySize, ed25519.SeedSize)
	}
}

// ParsePublicKey decodes "whpk_<base64>" of a 32-byte Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("an Ed25519 public key starts with %q", PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("the part after %q is not standard base64: %w", PublicKeyPrefix, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("the key is %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// FormatPrivateKey is "whsk_" and the base64 of the 64-byte private key.
func FormatPrivateKey(k ed25519.PrivateKey) string {
	return PrivateKeyPrefix + base64.StdEncoding.EncodeToString(k)
}

// FormatPublicKey is "whpk_" and the base64 of the 32-byte public key.
func FormatPublicKey(k ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k)
}

// GenerateEd25519 returns a new private key and its public key, formatted.
func GenerateEd25519() (private, public string) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails with crypto/rand
	return FormatPrivateKey(priv), FormatPublicKey(pub)
}

// PublicKeyOf returns the "whpk_" public key of a "whsk_" private key.
func PublicKeyOf(private string) (string, error) {
	k, err := ParsePrivateKey(private)
	if err != nil {
		return "", err
	}
	return FormatPublicKey(k.Public().(ed25519.PublicKey)), nil
}

// ed25519Signature signs "<id>.<unix>.<body>". A key that does not parse
// (the registry refuses those) gives nil, and Sign leaves it out.
func ed25519Signature(s Secret, msgID, unix string, body []byte) []byte {
	k, err := ParsePrivateKey(string(s))
	if err != nil {
		return nil
	}
	return ed25519.Sign(k, signedContent(msgID, unix, body))
}

// signedContent is "<id>.<unix>.<body>", the Standard Webhooks signed content.
func signedContent(msgID, unix string, body []byte) []byte {
	b := make([]byte, 0, len(msgID)+len(unix)+2+len(body))
	b = append(b, msgID...)
	b = append(b, '.')
	b = append(b, unix...)
	b = append(b, '.')
	return append(b, body...)
}

// VerifyEd25519 checks the Standard Webhooks headers in h against body with
// the public key alone ("whpk_..."): one "v1a,<base64>" entry of
// webhook-signature must be a valid Ed25519 signature of
// "<id>.<timestamp>.<body>", and, when tolerance is positive,
// webhook-timestamp must be within tolerance of the local clock. The error
// wraps ErrMissingHeader, ErrMalformed, ErrTimestamp or ErrNoMatch.
func VerifyEd25519(publicKey string, h http.Header, body []byte, tolerance time.Duration) error {
	pub, err := ParsePublicKey(publicKey)
	if err != nil {
		return fmt.Errorf("public key: %w: %w", err, ErrMalformed)
	}
	id, unix, sigs, err := standardHeaders(h, tolerance)
	if err != nil {
		return err
	}
	msg := signedContent(id, unix, body)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1a" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(got) != ed25519.SignatureSize {
			continue
		}
		if ed25519.Verify(pub, msg, got) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", HeaderSignature, ErrNoMatch)
}
