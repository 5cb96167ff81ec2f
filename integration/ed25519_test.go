package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.mongodb.org/mongo-driver/v2/bson"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

// verifyV1a checks r's webhook-signature as a receiver would, with
// crypto/ed25519 and the "whpk_" public key alone: one v1a entry must sign
// "<webhook-id>.<webhook-timestamp>.<body>".
func verifyV1a(t *testing.T, publicKey string, r received) bool {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(publicKey, "whpk_"))
	if !strings.HasPrefix(publicKey, "whpk_") || err != nil || len(raw) != ed25519.PublicKeySize {
		t.Fatalf("public key %q is not whpk_ and the base64 of 32 bytes (%v)", publicKey, err)
	}
	msg := []byte(r.header.Get("Webhook-Id") + "." + r.header.Get("Webhook-Timestamp") + "." + string(r.body))
	for _, entry := range strings.Fields(r.header.Get("Webhook-Signature")) {
		version, sig, _ := strings.Cut(entry, ",")
		if version != "v1a" {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && ed25519.Verify(ed25519.PublicKey(raw), msg, b) {
			return true
		}
	}
	return false
}

// TestEd25519Signatures creates an Ed25519 endpoint, checks that its
// private key is shown once and stored sealed, that a delivery verifies
// with the public key alone (and not with another), that a rotation's
// overlap signs with both keys and only the new one after, that a rotation
// may switch to HMAC, and that bad supplied keys are refused naming the
// field.
func TestEd25519Signatures(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ctx := context.Background()
	ed := registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, SignatureAlgorithm: ed})
	oldPrivate, oldPublic := ep.GetSecret(), ep.GetPublicKey()
	if !strings.HasPrefix(oldPrivate, "whsk_") || !strings.HasPrefix(oldPublic, "whpk_") || ep.GetSignatureAlgorithm() != ed {
		t.Fatalf("created endpoint: secret %q, public key %q, algorithm %v", oldPrivate, oldPublic, ep.GetSignatureAlgorithm())
	}
	privateB64 := strings.TrimPrefix(oldPrivate, "whsk_")

	// The private key is sealed at rest and never shown again; the public
	// key always is.
	cur, err := testenv.Client(t).Database(s.cfg.DatabasePrefix+"_registry").Collection("endpoints").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil || len(docs) != 1 {
		t.Fatalf("endpoint documents: %d %v", len(docs), err)
	}
	if bytes.Contains(docs[0], []byte(privateB64)) {
		t.Fatal("the Ed25519 private key is stored in clear")
	}
	got, err := c.registry.GetEndpoint(ctx, connect.NewRequest(&registryv1.GetEndpointRequest{ProjectId: projectID, EndpointId: ep.GetId()}))
	if err != nil || got.Msg.GetEndpoint().GetSecret() != "" || got.Msg.GetEndpoint().GetPublicKey() != oldPublic || got.Msg.GetEndpoint().GetSignatureAlgorithm() != ed {
		t.Fatalf("GetEndpoint: %v %v", got, err)
	}
	list, err := c.registry.ListEndpoints(ctx, connect.NewRequest(&registryv1.ListEndpointsRequest{ProjectId: projectID}))
	if err != nil || len(list.Msg.GetEndpoints()) != 1 || list.Msg.GetEndpoints()[0].GetSecret() != "" || list.Msg.GetEndpoints()[0].GetPublicKey() != oldPublic {
		t.Fatalf("ListEndpoints: %v %v", list, err)
	}
	if strings.Contains(got.Msg.String()+list.Msg.String(), privateB64) {
		t.Fatal("Get or List shows the private key")
	}

	send := func() received {
		t.Helper()
		n := len(recv.requests())
		if _, err := c.ingest.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{ProjectId: projectID, EndpointId: ep.GetId(), EventType: "ed", Data: `{"amount":1200}`})); err != nil {
			t.Fatal(err)
		}
		return recv.waitFor(t, "the event", func(r []received) bool { return len(r) > n })[n]
	}
	first := send()
	if sig := first.header.Get("Webhook-Signature"); !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, " ") {
		t.Fatalf("webhook-signature = %q, want one v1a entry", sig)
	}
	if !verifyV1a(t, oldPublic, first) {
		t.Fatal("the delivery does not verify with the endpoint's public key")
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	if verifyV1a(t, "whpk_"+base64.StdEncoding.EncodeToString(pub), first) {
		t.Fatal("the delivery verifies with another public key")
	}

	// Rotation keeps the algorithm; both keys sign during the overlap.
	const overlap = 10 * time.Second
	rot, err := c.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: ep.GetId(), PreviousSecretTtlSeconds: uint32(overlap / time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	newPrivate, newPublic := rot.Msg.GetEndpoint().GetSecret(), rot.Msg.GetEndpoint().GetPublicKey()
	if !strings.HasPrefix(newPrivate, "whsk_") || newPrivate == oldPrivate || !strings.HasPrefix(newPublic, "whpk_") || newPublic == oldPublic || rot.Msg.GetEndpoint().GetSignatureAlgorithm() != ed {
		t.Fatalf("rotation returned secret %q, public key %q, algorithm %v", newPrivate, newPublic, rot.Msg.GetEndpoint().GetSignatureAlgorithm())
	}
	during := send()
	if time.Since(rotated) < overlap {
		if !verifyV1a(t, oldPublic, during) || !verifyV1a(t, newPublic, during) {
			t.Fatalf("during the overlap: old verifies %v, new verifies %v (signature %q)", verifyV1a(t, oldPublic, during), verifyV1a(t, newPublic, during), during.header.Get("Webhook-Signature"))
		}
	} else {
		t.Log("the machine was too slow to deliver within the overlap: not checking it")
	}
	time.Sleep(time.Until(rotated.Add(overlap + 100*time.Millisecond)))
	after := send()
	if verifyV1a(t, oldPublic, after) || !verifyV1a(t, newPublic, after) {
		t.Fatalf("after the overlap: old verifies %v, new verifies %v", verifyV1a(t, oldPublic, after), verifyV1a(t, newPublic, after))
	}

	// A rotation naming HMAC switches the endpoint to v1.
	hm, err := c.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: ep.GetId(),
		SignatureAlgorithm: registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_HMAC_SHA256}))
	if err != nil || !strings.HasPrefix(hm.Msg.GetEndpoint().GetSecret(), "whsec_") || hm.Msg.GetEndpoint().GetPublicKey() != "" {
		t.Fatalf("rotation to HMAC: %v %v", hm, err)
	}
	last := send()
	wh, err := standardwebhooks.NewWebhook(hm.Msg.GetEndpoint().GetSecret())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(last.body, last.header); err != nil || verifyV1a(t, newPublic, last) {
		t.Fatalf("after the switch to HMAC: v1 verifies %v, old v1a verifies %v", err, verifyV1a(t, newPublic, last))
	}

	// A supplied seed is accepted, and its public key derived.
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	own := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, SignatureAlgorithm: ed, Secret: "whsk_" + base64.StdEncoding.EncodeToString(seed)})
	if want := "whpk_" + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)); own.GetPublicKey() != want {
		t.Fatalf("supplied seed: public key %q, want %q", own.GetPublicKey(), want)
	}

	// Bad keys are refused, naming the field.
	for name, req := range map[string]*registryv1.CreateEndpointRequest{
		"not base64":        {Secret: "whsk_not*base64"},
		"wrong length":      {Secret: "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 16))},
		"no prefix":         {Secret: base64.StdEncoding.EncodeToString(seed)},
		"HMAC with whsk_":   {Secret: "whsk_" + base64.StdEncoding.EncodeToString(seed), SignatureAlgorithm: registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_HMAC_SHA256},
		"unknown algorithm": {SignatureAlgorithm: registryv1.SignatureAlgorithm(7)},
	} {
		req.ProjectId, req.Url = projectID, recv.URL
		if req.SignatureAlgorithm == registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_UNSPECIFIED {
			req.SignatureAlgorithm = ed
		}
		field := "secret"
		if name == "unknown algorithm" {
			field = "signature_algorithm"
		}
		_, err := c.registry.CreateEndpoint(ctx, connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", name, err, field)
		}
	}
	_, err = c.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: own.GetId(), Secret: "whsk_AAAA"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "secret") {
		t.Errorf("rotation with a bad key: %v, want InvalidArgument naming secret", err)
	}

	// A portal token creates and rotates Ed25519 endpoints of its owner only.
	link, err := c.registry.CreatePortalLink(ctx, connect.NewRequest(&registryv1.CreatePortalLinkRequest{ProjectId: projectID, OwnerId: "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	p := s.clients(link.Msg.GetToken())
	pe, err := p.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, SignatureAlgorithm: ed}))
	if err != nil || pe.Msg.GetEndpoint().GetOwnerId() != "acme" || !strings.HasPrefix(pe.Msg.GetEndpoint().GetSecret(), "whsk_") || !strings.HasPrefix(pe.Msg.GetEndpoint().GetPublicKey(), "whpk_") {
		t.Fatalf("portal CreateEndpoint: %v %v", pe, err)
	}
	if _, err := p.registry.CreateEndpoint(ctx, connect.NewRequest(&registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, SignatureAlgorithm: ed, OwnerId: "globex"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("portal CreateEndpoint for globex: %v", err)
	}
	if r, err := p.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: pe.Msg.GetEndpoint().GetId()})); err != nil || r.Msg.GetEndpoint().GetPublicKey() == pe.Msg.GetEndpoint().GetPublicKey() || !strings.HasPrefix(r.Msg.GetEndpoint().GetSecret(), "whsk_") {
		t.Fatalf("portal rotation of its own: %v %v", r, err)
	}
	// own has no owner: not the portal's.
	if _, err := p.registry.RotateEndpointSecret(ctx, connect.NewRequest(&registryv1.RotateEndpointSecretRequest{ProjectId: projectID, EndpointId: own.GetId(), SignatureAlgorithm: ed})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("portal rotation of another owner's endpoint: %v", err)
	}
}
