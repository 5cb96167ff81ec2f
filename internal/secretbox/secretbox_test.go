package secretbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func newBox(t *testing.T) (*Box, []byte) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b, key
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	b, _ := newBox(t)
	const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	s1, err := b.Seal(secret, "ep_1")
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := b.Seal(secret, "ep_1")
	if s1 == s2 || strings.Contains(s1, "c2VjcmV0") {
		t.Fatalf("sealing is deterministic or shows the secret: %q %q", s1, s2)
	}
	if got, err := b.Open(s1, "ep_1"); err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(s1, "ep_2"); err == nil {
		t.Fatal("a sealed value opened under another record's context")
	}
	other, _ := newBox(t)
	if _, err := other.Open(s1, "ep_1"); err == nil {
		t.Fatal("a sealed value opened with another key")
	}
	if _, err := b.Open("whsec_plain", "ep_1"); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("plain value: %v", err)
	}
	if _, err := b.Open(s1[:len(s1)-4], "ep_1"); err == nil {
		t.Fatal("a truncated value opened")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	for _, s := range []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
		got, err := ParseKey(s)
		if err != nil || string(got) != string(key) {
			t.Fatalf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "short", hex.EncodeToString(key[:16])} {
		if _, err := ParseKey(bad); err == nil {
			t.Fatalf("ParseKey(%q) accepted", bad)
		}
	}
}
