package signature

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEd25519SignVerifiesWithPublicKeyAlone(t *testing.T) {
	priv, pub := GenerateEd25519()
	body := []byte(`{"type":"invoice.paid"}`)
	h := http.Header{}
	Sign(h, Options{}, "msg_1", time.Now(), body, []Secret{Secret(priv)})
	sig := h.Get(HeaderSignature)
	if !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, " ") {
		t.Fatalf("webhook-signature = %q, want one v1a entry", sig)
	}
	if h.Get(DefaultConvoyHeader) != "" {
		t.Fatalf("Convoy header set for an Ed25519-only endpoint: %q", h.Get(DefaultConvoyHeader))
	}
	// Verify with crypto/ed25519 directly, from the whpk_ text only.
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pub, "whpk_"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1a,"))
	msg := "msg_1." + h.Get(HeaderTimestamp) + "." + string(body)
	if !ed25519.Verify(ed25519.PublicKey(raw), []byte(msg), s) {
		t.Fatal("crypto/ed25519 does not verify the v1a signature")
	}
	if err := VerifyEd25519(pub, h, body, DefaultTolerance); err != nil {
		t.Fatalf("VerifyEd25519: %v", err)
	}
	if err := VerifyEd25519(pub, h, []byte(`{"type":"other"}`), DefaultTolerance); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("tampered body: %v, want ErrNoMatch", err)
	}
	_, other := GenerateEd25519()
	if err := VerifyEd25519(other, h, body, DefaultTolerance); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("wrong key: %v, want ErrNoMatch", err)
	}
}

func TestEd25519SeedAndMixedRotation(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	priv := "whsk_" + base64.StdEncoding.EncodeToString(seed)
	if err := Secret(priv).Validate(); err != nil {
		t.Fatalf("seed key refused: %v", err)
	}
	pub, err := PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	hmacSecret := Secret("whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	body := []byte("{}")
	h := http.Header{}
	// New Ed25519 key first, old HMAC secret during the overlap.
	Sign(h, Options{}, "msg_2", time.Now(), body, []Secret{Secret(priv), hmacSecret})
	if f := strings.Fields(h.Get(HeaderSignature)); len(f) != 2 || !strings.HasPrefix(f[0], "v1a,") || !strings.HasPrefix(f[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want v1a then v1", h.Get(HeaderSignature))
	}
	if err := VerifyEd25519(pub, h, body, DefaultTolerance); err != nil {
		t.Fatalf("VerifyEd25519: %v", err)
	}
	if err := VerifyStandard(hmacSecret, h, body, DefaultTolerance); err != nil {
		t.Fatalf("VerifyStandard: %v", err)
	}
	if err := VerifyConvoy(hmacSecret, "", h.Get(DefaultConvoyHeader), body, false, 0); err != nil {
		t.Fatalf("VerifyConvoy: %v", err)
	}
}

func TestEd25519BadKeys(t *testing.T) {
	for _, bad := range []string{"whsk_", "whsk_!!!", "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if err := Secret(bad).Validate(); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", bad)
		}
	}
	// A 64-byte key whose public half does not match its seed.
	k := make([]byte, 64)
	_, _ = rand.Read(k)
	if _, err := ParsePrivateKey("whsk_" + base64.StdEncoding.EncodeToString(k)); err == nil {
		t.Error("inconsistent 64-byte key accepted")
	}
	if _, err := ParsePublicKey("whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 31))); err == nil {
		t.Error("31-byte public key accepted")
	}
}
