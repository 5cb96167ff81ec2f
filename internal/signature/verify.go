package signature

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// standardHeaders reads the Standard Webhooks headers of h, all of which
// must be there, and checks the timestamp against tolerance.
func standardHeaders(h http.Header, tolerance time.Duration) (id, unix, sigs string, err error) {
	id, unix, sigs = h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, hv := range [...]struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, unix}, {HeaderSignature, sigs}} {
		if hv.value == "" {
			return "", "", "", fmt.Errorf("%s: %w", hv.name, ErrMissingHeader)
		}
	}
	if err := checkTimestamp(HeaderTimestamp, unix, tolerance); err != nil {
		return "", "", "", err
	}
	return id, unix, sigs, nil
}

// VerifyStandard checks the Standard Webhooks headers in h against body: one
// "v1,<base64>" entry of webhook-signature must match secret, and, when
// tolerance is positive, webhook-timestamp must be within tolerance of the
// local clock (DefaultTolerance is the usual choice; zero or less skips the
// check, for replaying a stored request). The error wraps ErrMissingHeader,
// ErrMalformed, ErrTimestamp or ErrNoMatch.
func VerifyStandard(secret Secret, h http.Header, body []byte, tolerance time.Duration) error {
	id, unix, sigs, err := standardHeaders(h, tolerance)
	if err != nil {
		return err
	}
	want := standardMAC(secret.standardKey(), id, unix, body)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // other versions (v1a: asymmetric) are not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", HeaderSignature, ErrNoMatch)
}

// VerifyConvoy checks value, the Convoy-style header named header (only used
// in errors; DefaultConvoyHeader when empty), against body. Simple form: one
// of the comma-separated hex HMAC-SHA256 of the body must match secret.
// Advanced form: "t=<unix>,v1=<hex>[,v1=<hex>...]", one v1 must match the
// HMAC-SHA256 of "<unix>,<body>" and, when tolerance is positive, t must be
// within tolerance of the local clock. The error wraps ErrMissingHeader,
// ErrMalformed, ErrTimestamp or ErrNoMatch.
func VerifyConvoy(secret Secret, header string, value string, body []byte, advanced bool, tolerance time.Duration) error {
	if header == "" {
		header = DefaultConvoyHeader
	}
	if strings.TrimSpace(value) == "" {
		return fmt.Errorf("%s: %w", header, ErrMissingHeader)
	}
	key := secret.convoyKey()

	if !advanced {
		want := convoySimpleMAC(key, body)
		for sig := range strings.SplitSeq(value, ",") {
			if matchHex(sig, want) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w", header, ErrNoMatch)
	}

	var unix string
	var sigs []string
	for part := range strings.SplitSeq(value, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if unix != "" {
				return fmt.Errorf("%s: more than one t=: %w", header, ErrMalformed)
			}
			unix = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if unix == "" {
		return fmt.Errorf("%s: no t=: %w", header, ErrMalformed)
	}
	if err := checkTimestamp(header, unix, tolerance); err != nil {
		return err
	}
	want := convoyAdvancedMAC(key, unix, body)
	for _, sig := range sigs {
		if matchHex(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", header, ErrNoMatch)
}

// matchHex compares a hex signature with want in constant time.
func matchHex(sig string, want []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	return err == nil && hmac.Equal(got, want)
}

// checkTimestamp parses unix seconds and, when tolerance is positive, checks
// that they are within tolerance of now, either side.
func checkTimestamp(header, unix string, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: timestamp %q is not Unix seconds: %w", header, unix, ErrMalformed)
	}
	if tolerance <= 0 {
		return nil
	}
	if d := time.Since(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s: timestamp %d is %s from now, more than %s: %w",
			header, sec, d.Round(time.Second), tolerance, ErrTimestamp)
	}
	return nil
}
