package registry

import (
	"crypto/rand"
	"encoding/base64"
)

// sealSecret turns an endpoint signing secret into the form kept in the
// database, and openSecret turns it back. They are the identity for now:
// encryption at rest will change this file only.
func sealSecret(secret string) (string, error) {
	return secret, nil
}

// openSecret reverses sealSecret.
func openSecret(sealed string) (string, error) {
	return sealed, nil
}

// generateSecret returns a new signing secret in the Standard Webhooks
// form: "whsec_" and the standard base64 of 32 random bytes.
func generateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
