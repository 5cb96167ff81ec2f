package deliverer

import (
	"testing"
	"time"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/signature"
)

// TestLiveSecretsDropsBrokenEd25519Keys: a private key that cannot sign is
// not a live secret, so a target with nothing else is not sent unsigned.
func TestLiveSecretsDropsBrokenEd25519Keys(t *testing.T) {
	good, _ := signature.GenerateEd25519()
	target := &registryv1.Target{Secrets: []*registryv1.Secret{{Value: []byte("whsk_AAAA")}, {Value: []byte(good)}}}
	if got := liveSecrets(target, time.Now()); len(got) != 1 || string(got[0]) != good {
		t.Fatalf("liveSecrets = %q, want only the valid key", got)
	}
	broken := &registryv1.Target{Secrets: []*registryv1.Secret{{Value: []byte("whsk_AAAA")}}}
	if got := liveSecrets(broken, time.Now()); len(got) != 0 {
		t.Fatalf("liveSecrets = %q, want none", got)
	}
}
