package signature_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookmesh/hookmesh/internal/signature"
)

// newSecret returns a fresh Standard Webhooks secret: "whsec_" + base64 of 32
// random bytes.
func newSecret(tb testing.TB) signature.Secret {
	tb.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	return signature.Secret("whsec_" + base64.StdEncoding.EncodeToString(key))
}

// mac is HMAC-SHA256 computed here, independently of the package.
func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "")))
	return m.Sum(nil)
}

func TestSignKnownAnswers(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1614265330, 0)
	body := `{"test": 2432232314}`
	id := "msg_p5jXN8AQM9LWM0D4loKWxJek"

	tests := []struct {
		name   string
		secret string
		stdKey []byte // the key the Standard Webhooks signature must use
	}{
		{"whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustB64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{"raw", "my convoy secret", []byte("my convoy secret")},
		{"whsec prefix with invalid base64 signs raw", "whsec_not base64!", []byte("whsec_not base64!")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			convoyKey := []byte(tt.secret)
			wantStd := "v1," + base64.StdEncoding.EncodeToString(mac(tt.stdKey, id, ".1614265330.", body))
			wantSimple := hex.EncodeToString(mac(convoyKey, body))
			wantAdvanced := "t=1614265330,v1=" + hex.EncodeToString(mac(convoyKey, "1614265330,", body))

			h := http.Header{}
			signature.Sign(h, signature.Options{}, id, ts, []byte(body), []signature.Secret{signature.Secret(tt.secret)})
			assertHeader(t, h, "webhook-id", id)
			assertHeader(t, h, "webhook-timestamp", "1614265330")
			assertHeader(t, h, "webhook-signature", wantStd)
			assertHeader(t, h, "X-Hookmesh-Signature", wantSimple)

			h = http.Header{}
			signature.Sign(h, signature.Options{Advanced: true, Header: "X-Sig"}, id, ts, []byte(body), []signature.Secret{signature.Secret(tt.secret)})
			assertHeader(t, h, "webhook-signature", wantStd)
			assertHeader(t, h, "X-Sig", wantAdvanced)
			if v := h.Get("X-Hookmesh-Signature"); v != "" {
				t.Errorf("default header set to %q when Options.Header names another", v)
			}
		})
	}
}

// TestSignPublishedVector is the example of the Standard Webhooks libraries'
// own tests.
func TestSignPublishedVector(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	signature.Sign(h, signature.Options{}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`), []signature.Secret{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	assertHeader(t, h, "webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
}

func TestSignSeveralSecretsKnownAnswers(t *testing.T) {
	t.Parallel()
	cur, old := newSecret(t), signature.Secret("plain-old-secret")
	body, id, ts := `{"a":1}`, "msg_1", time.Unix(1700000000, 0)
	curKey := mustB64(t, strings.TrimPrefix(string(cur), "whsec_"))

	h := http.Header{}
	signature.Sign(h, signature.Options{}, id, ts, []byte(body), []signature.Secret{cur, old})
	assertHeader(t, h, "webhook-signature",
		"v1,"+base64.StdEncoding.EncodeToString(mac(curKey, id, ".1700000000.", body))+
			" v1,"+base64.StdEncoding.EncodeToString(mac([]byte(old), id, ".1700000000.", body)))
	assertHeader(t, h, "X-Hookmesh-Signature",
		hex.EncodeToString(mac([]byte(cur), body))+","+hex.EncodeToString(mac([]byte(old), body)))

	h = http.Header{}
	signature.Sign(h, signature.Options{Advanced: true}, id, ts, []byte(body), []signature.Secret{cur, old})
	assertHeader(t, h, "X-Hookmesh-Signature",
		"t=1700000000,v1="+hex.EncodeToString(mac([]byte(cur), "1700000000,", body))+
			",v1="+hex.EncodeToString(mac([]byte(old), "1700000000,", body)))
}

func TestStandardWebhooksLibraryVerifies(t *testing.T) {
	t.Parallel()
	cur, old, stranger := newSecret(t), newSecret(t), newSecret(t)
	body := []byte(`{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}`)

	tests := []struct {
		name    string
		secrets []signature.Secret
	}{
		{"one secret", []signature.Secret{cur}},
		{"rotation", []signature.Secret{cur, old}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			signature.Sign(h, signature.Options{}, "msg_2Lx", time.Now(), body, tt.secrets)

			for _, s := range tt.secrets {
				wh := library(t, s)
				if err := wh.Verify(body, h); err != nil {
					t.Errorf("library rejects the signature of %s: %v", s[:10], err)
				}
				if err := signature.VerifyStandard(s, h, body, signature.DefaultTolerance); err != nil {
					t.Errorf("VerifyStandard rejects the signature of %s: %v", s[:10], err)
				}
				tampered := append([]byte(nil), body...)
				tampered[len(tampered)-2] = '1'
				if err := wh.Verify(tampered, h); err == nil {
					t.Error("library accepts a tampered body")
				}
				if err := signature.VerifyStandard(s, h, tampered, signature.DefaultTolerance); !errors.Is(err, signature.ErrNoMatch) {
					t.Errorf("VerifyStandard on a tampered body = %v, want ErrNoMatch", err)
				}
				otherID := h.Clone()
				otherID.Set("webhook-id", "msg_other")
				if err := wh.Verify(body, otherID); err == nil {
					t.Error("library accepts a changed webhook-id")
				}
			}
			if err := library(t, stranger).Verify(body, h); err == nil {
				t.Error("library accepts a secret that did not sign")
			}
		})
	}
}

func TestStandardWebhooksLibraryVerifiesRawSecret(t *testing.T) {
	t.Parallel()
	s := signature.Secret("a secret without the prefix")
	body := []byte(`{}`)
	h := http.Header{}
	signature.Sign(h, signature.Options{}, "msg_1", time.Now(), body, []signature.Secret{s})
	wh, err := standardwebhooks.NewWebhookRaw([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("library with the raw key rejects the signature: %v", err)
	}
}

func TestVerifyStandardErrors(t *testing.T) {
	t.Parallel()
	s := newSecret(t)
	body := []byte(`{"x":true}`)
	signed := func(ts time.Time) http.Header {
		h := http.Header{}
		signature.Sign(h, signature.Options{}, "msg_1", ts, body, []signature.Secret{s})
		return h
	}
	without := func(name string) http.Header {
		h := signed(time.Now())
		h.Del(name)
		return h
	}
	with := func(name, value string) http.Header {
		h := signed(time.Now())
		h.Set(name, value)
		return h
	}

	tests := []struct {
		name      string
		secret    signature.Secret
		h         http.Header
		tolerance time.Duration
		want      error
	}{
		{"ok", s, signed(time.Now()), signature.DefaultTolerance, nil},
		{"old but tolerance off", s, signed(time.Now().Add(-time.Hour)), 0, nil},
		{"too old", s, signed(time.Now().Add(-10 * time.Minute)), signature.DefaultTolerance, signature.ErrTimestamp},
		{"too new", s, signed(time.Now().Add(10 * time.Minute)), signature.DefaultTolerance, signature.ErrTimestamp},
		{"no id", s, without("webhook-id"), 0, signature.ErrMissingHeader},
		{"no timestamp", s, without("webhook-timestamp"), 0, signature.ErrMissingHeader},
		{"no signature", s, without("webhook-signature"), 0, signature.ErrMissingHeader},
		{"timestamp not a number", s, with("webhook-timestamp", "yesterday"), 0, signature.ErrMalformed},
		{"other secret", newSecret(t), signed(time.Now()), 0, signature.ErrNoMatch},
		{"unknown version only", s, with("webhook-signature", "v1a,abc"), 0, signature.ErrNoMatch},
		{"garbage entries", s, with("webhook-signature", "v1 v1, ,, v1,%%%"), 0, signature.ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := signature.VerifyStandard(tt.secret, tt.h, body, tt.tolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("VerifyStandard = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConvoyVerifiesDuringRotation(t *testing.T) {
	t.Parallel()
	cur, old := newSecret(t), signature.Secret("old-plain-secret")
	body := []byte(`{"event":"ping"}`)
	tampered := []byte(`{"event":"pong"}`)

	for _, advanced := range []bool{false, true} {
		t.Run("advanced="+strconv.FormatBool(advanced), func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			opts := signature.Options{Advanced: advanced, Header: "X-Convoy-Signature"}
			signature.Sign(h, opts, "msg_1", time.Now(), body, []signature.Secret{cur, old})
			v := h.Get("X-Convoy-Signature")

			for _, s := range []signature.Secret{cur, old} {
				if err := signature.VerifyConvoy(s, "X-Convoy-Signature", v, body, advanced, signature.DefaultTolerance); err != nil {
					t.Errorf("VerifyConvoy(%s) = %v", s[:6], err)
				}
				if err := signature.VerifyConvoy(s, "X-Convoy-Signature", v, tampered, advanced, signature.DefaultTolerance); !errors.Is(err, signature.ErrNoMatch) {
					t.Errorf("VerifyConvoy(%s) on a tampered body = %v, want ErrNoMatch", s[:6], err)
				}
			}
			if err := signature.VerifyConvoy(newSecret(t), "", v, body, advanced, 0); !errors.Is(err, signature.ErrNoMatch) {
				t.Errorf("VerifyConvoy with a secret that did not sign = %v, want ErrNoMatch", err)
			}
		})
	}
}

func TestVerifyConvoyErrors(t *testing.T) {
	t.Parallel()
	s := signature.Secret("s3cret")
	body := []byte(`{}`)
	advanced := func(ts time.Time) string {
		h := http.Header{}
		signature.Sign(h, signature.Options{Advanced: true}, "msg_1", ts, body, []signature.Secret{s})
		return h.Get(signature.DefaultConvoyHeader)
	}
	goodHex := hex.EncodeToString(mac([]byte(s), "0,", string(body)))

	tests := []struct {
		name     string
		value    string
		advanced bool
		want     error
	}{
		{"empty simple", "", false, signature.ErrMissingHeader},
		{"empty advanced", " ", true, signature.ErrMissingHeader},
		{"simple with spaces and uppercase", " AAAA , " + strings.ToUpper(hex.EncodeToString(mac([]byte(s), string(body)))), false, nil},
		{"simple not hex", "zz", false, signature.ErrNoMatch},
		{"advanced fresh", advanced(time.Now()), true, nil},
		{"advanced too old", advanced(time.Now().Add(-time.Hour)), true, signature.ErrTimestamp},
		{"advanced no t", "v1=" + goodHex, true, signature.ErrMalformed},
		{"advanced two t", "t=0,t=1,v1=" + goodHex, true, signature.ErrMalformed},
		{"advanced t not a number", "t=now,v1=" + goodHex, true, signature.ErrMalformed},
		{"advanced given the simple form", hex.EncodeToString(mac([]byte(s), string(body))), true, signature.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := signature.VerifyConvoy(s, "", tt.value, body, tt.advanced, signature.DefaultTolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("VerifyConvoy = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), signature.DefaultConvoyHeader) {
				t.Errorf("error %q does not name the header", err)
			}
		})
	}
	// With the tolerance off, the advanced form at t=0 verifies.
	if err := signature.VerifyConvoy(s, "", "t=0,v1="+goodHex, body, true, 0); err != nil {
		t.Errorf("VerifyConvoy(t=0, tolerance off) = %v", err)
	}
}

func TestSignWithoutSecrets(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("webhook-signature", "stale")
	h.Set("X-Hookmesh-Signature", "stale")
	signature.Sign(h, signature.Options{}, "msg_1", time.Unix(5, 0), []byte(`{}`), nil)
	assertHeader(t, h, "webhook-id", "msg_1")
	assertHeader(t, h, "webhook-timestamp", "5")
	for _, name := range []string{"webhook-signature", "X-Hookmesh-Signature"} {
		if _, ok := h[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("%s left set with no secrets", name)
		}
	}
}

func TestSecretValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secret signature.Secret
		ok     bool
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true},
		{"any convoy secret", true},
		{"whsec_not base64!", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := tt.secret.Validate(); (err == nil) != tt.ok {
			t.Errorf("Secret(%q).Validate() = %v, want ok=%v", tt.secret, err, tt.ok)
		}
	}
}

func FuzzSign(f *testing.F) {
	f.Add([]byte(`{"test": 2432232314}`), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	f.Add([]byte{}, "", "m")
	f.Add([]byte("a.b,c\x00\xff"), "whsec_", "id.with.dots")
	f.Add([]byte("x"), "whsec_!!", "id with spaces, and commas")
	f.Fuzz(func(t *testing.T, body []byte, secret, id string) {
		if id == "" {
			t.Skip("webhook-id is required by Standard Webhooks")
		}
		s := signature.Secret(secret)
		now := time.Now()
		for _, advanced := range []bool{false, true} {
			h := http.Header{}
			signature.Sign(h, signature.Options{Advanced: advanced}, id, now, body, []signature.Secret{s, "second"})
			if err := signature.VerifyStandard(s, h, body, signature.DefaultTolerance); err != nil {
				t.Fatalf("VerifyStandard(secret %q, id %q) = %v", secret, id, err)
			}
			if err := signature.VerifyConvoy(s, "", h.Get(signature.DefaultConvoyHeader), body, advanced, signature.DefaultTolerance); err != nil {
				t.Fatalf("VerifyConvoy(secret %q, advanced %v) = %v", secret, advanced, err)
			}
		}
	})
}

func library(tb testing.TB, s signature.Secret) *standardwebhooks.Webhook {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(string(s))
	if err != nil {
		tb.Fatal(err)
	}
	return wh
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func assertHeader(tb testing.TB, h http.Header, name, want string) {
	tb.Helper()
	if got := h.Get(name); got != want {
		tb.Errorf("%s = %q, want %q", name, got, want)
	}
}
