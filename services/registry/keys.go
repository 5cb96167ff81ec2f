package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// API keys look like hm_<8-character prefix>_<secret>. The prefix is shown
// in listings to tell keys apart; the secret is 32 random bytes. Only the
// SHA-256 of the whole key is stored.
const (
	keyScheme      = "hm_"
	keyPrefixLen   = 8
	keySecretBytes = 32
	// maxKeyLen bounds what AuthenticateKey hashes and looks up.
	maxKeyLen = 128
)

// How long AuthenticateKey keeps an answer: finds by _id are slow on
// FerretDB. Revocation in this process drops the answer at once; other
// processes learn of it within keyCacheTTL.
const (
	keyCacheTTL         = 10 * time.Second
	keyNegativeCacheTTL = time.Second
)

// keyAnswer is what AuthenticateKey caches for a key.
type keyAnswer struct {
	projectID string
	keyID     string
}

// newAPIKey returns a new key and its visible prefix.
func newAPIKey() (key, prefix string) {
	prefix = keyScheme + ids.Random(5) // 5 bytes are 8 base32 characters
	secret := make([]byte, keySecretBytes)
	_, _ = rand.Read(secret) // never fails: crypto/rand crashes the program instead
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(secret), prefix
}

// hashKey returns the stored form of a key: the hex SHA-256 of it.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// AuthenticateKey resolves a project API key to its project and key id. It
// implements auth.Authenticator: an unknown or revoked key, or a key of a
// deleted project, returns auth.ErrUnknownKey.
func (s *Service) AuthenticateKey(ctx context.Context, key string) (projectID, keyID string, err error) {
	if !strings.HasPrefix(key, keyScheme) || len(key) > maxKeyLen {
		return "", "", auth.ErrUnknownKey
	}
	hash := hashKey(key)
	a, err := s.keys.Load(ctx, hash, func(ctx context.Context) (keyAnswer, string, time.Duration, error) {
		d, err := s.store.apiKeyByHash(ctx, hash)
		switch {
		case errors.Is(err, errNotFound):
			return keyAnswer{}, "", keyNegativeCacheTTL, auth.ErrUnknownKey
		case err != nil:
			return keyAnswer{}, "", 0, err
		case d.RevokeTime != nil:
			return keyAnswer{}, d.ProjectID, keyNegativeCacheTTL, auth.ErrUnknownKey
		}
		return keyAnswer{projectID: d.ProjectID, keyID: d.KeyID}, d.ProjectID, keyCacheTTL, nil
	})
	if err != nil {
		return "", "", err
	}
	return a.projectID, a.keyID, nil
}

// newKeyDoc makes a new API key of a project: the record to store and the
// key to show once.
func newKeyDoc(projectID, name string, now time.Time) (*apiKeyDoc, string) {
	key, prefix := newAPIKey()
	return &apiKeyDoc{
		Hash:       hashKey(key),
		KeyID:      ids.New("key"),
		ProjectID:  projectID,
		Name:       name,
		Prefix:     prefix,
		CreateTime: now,
	}, key
}
