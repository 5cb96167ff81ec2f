package registry

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/secretbox"
	"github.com/hookmesh/hookmesh/internal/signature"
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

// newSecret checks or generates the secret of algorithm alg (HMAC when
// unspecified) from supplied, the request's field named field: it returns
// the secret as its user holds it and, for Ed25519, the "whpk_" public key.
func newSecret(field string, alg registryv1.SignatureAlgorithm, supplied string) (secret, publicKey string, err error) {
	switch alg {
	case registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_UNSPECIFIED, registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_HMAC_SHA256:
		if supplied == "" {
			return generateSecret(), "", nil
		}
		if strings.HasPrefix(supplied, signature.PrivateKeyPrefix) {
			return "", "", apierr.Invalid(field, "starts with %q, the prefix of an Ed25519 private key: set signature_algorithm to SIGNATURE_ALGORITHM_ED25519 to sign with it, or choose an HMAC secret without that prefix", signature.PrivateKeyPrefix)
		}
		if err := checkSecret(field, supplied); err != nil {
			return "", "", err
		}
		return supplied, "", nil
	case registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519:
		if supplied == "" {
			secret, publicKey = signature.GenerateEd25519()
			return secret, publicKey, nil
		}
		publicKey, err := signature.PublicKeyOf(supplied)
		if err != nil {
			return "", "", apierr.Invalid(field, "is not an Ed25519 private key (%q and the standard base64 of the 64-byte private key or its 32-byte seed): %v (leave it empty to have one generated)", signature.PrivateKeyPrefix, err)
		}
		return supplied, publicKey, nil
	default:
		return "", "", apierr.Invalid("signature_algorithm", "unknown value %d: use SIGNATURE_ALGORITHM_HMAC_SHA256 or SIGNATURE_ALGORITHM_ED25519", int32(alg))
	}
}

// generateSecret returns a new signing secret in the Standard Webhooks
// form: "whsec_" and the standard base64 of 32 random bytes.
func generateSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
