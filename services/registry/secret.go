package registry

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/hookmesh/hookmesh/internal/secretbox"
)

// sealSecret encrypts an endpoint signing secret for the database, bound to
// the endpoint's id (a sealed secret copied to another endpoint does not
// open).
func sealSecret(box *secretbox.Box, endpointID, secret string) (string, error) {
	sealed, err := box.Seal(secret, endpointID)
	if err != nil {
		return "", fmt.Errorf("seal secret of endpoint %s: %w", endpointID, err)
	}
	return sealed, nil
}

// openSecret reverses sealSecret. A secret stored before encryption at rest
// existed is returned as it is, and sealed at the endpoint's next write.
func openSecret(box *secretbox.Box, endpointID, sealed string) (string, error) {
	secret, err := box.Open(sealed, endpointID)
	if errors.Is(err, secretbox.ErrNotSealed) {
		return sealed, nil
	}
	if err != nil {
		return "", fmt.Errorf("open secret of endpoint %s: %w", endpointID, err)
	}
	return secret, nil
}

// generateSecret returns a new signing secret in the Standard Webhooks
// form: "whsec_" and the standard base64 of 32 random bytes.
func generateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
