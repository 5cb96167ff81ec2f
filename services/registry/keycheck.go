package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/hookmesh/hookmesh/internal/metaevent"
	"github.com/hookmesh/hookmesh/internal/secretbox"
)

// keyCheckSample is how many of the newest endpoints CheckSecretKey opens.
const keyCheckSample = 5

// ErrSecretKeyMismatch is returned by CheckSecretKey when the secret key
// cannot open the endpoint secrets already stored.
var ErrSecretKeyMismatch = errors.New("the secret key cannot open the endpoint secrets stored in the database")

// CheckSecretKey opens the secrets of the newest endpoints with the current
// key, so that a registry started with another key (a lost
// .hookmesh/secret-key, a mistyped HOOKMESH_SECRET_KEY) refuses to start
// instead of answering `internal error` to every event. The error says what
// to do.
func (s *Service) CheckSecretKey(ctx context.Context) error {
	docs, err := findAll[endpointDoc](ctx, s.store.endpoints, bson.D{}, bson.D{{Key: "_id", Value: -1}}, keyCheckSample)
	if err != nil {
		return fmt.Errorf("check the secret key against stored endpoint secrets: %w", err)
	}
	checked, failed := 0, 0
	var firstFailed string
	for _, d := range docs {
		for _, sd := range d.Secrets {
			checked++
			if _, err := openSecret(s.box, d.ID, sd.Value); err != nil {
				failed++
				if firstFailed == "" {
					firstFailed = d.ID
				}
			}
		}
	}
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("%w (%d of the %d secrets of the %d newest endpoints do not open, e.g. endpoint %s). "+
		"HOOKMESH_SECRET_KEY is not the key they were sealed with. Either restore that key (`make run` keeps it in .hookmesh/secret-key), "+
		"or, if it is known, re-seal every secret under the new key with `hookmesh reseal -old-secret-key OLD_KEY`, "+
		"or, if it is lost, give every endpoint a new secret with `hookmesh reset-secrets` (the endpoints' owners must then be given their new secrets)",
		ErrSecretKeyMismatch, failed, checked, len(docs), firstFailed)
}

// logUnreadable logs an endpoint whose secrets cannot be opened: its
// deliveries end FAILED, unsigned and unsent, until the key is restored or
// the endpoint gets a new secret.
func (s *Service) logUnreadable(ctx context.Context, d *endpointDoc, err error) {
	if err == nil {
		return
	}
	s.logger.ErrorContext(ctx, "endpoint secret cannot be opened with HOOKMESH_SECRET_KEY: its deliveries fail unsigned and unsent; "+
		"restore the key, or give the endpoint a new secret (RotateEndpointSecret, or `hookmesh reset-secrets` for all)",
		"project_id", d.ProjectID, "endpoint_id", d.ID, "err", err)
}

// NewSecret is a secret that ResetSecrets gave an endpoint, for its owner.
type NewSecret struct {
	ProjectID  string `json:"project_id"`
	EndpointID string `json:"endpoint_id"`
	OwnerID    string `json:"owner_id,omitempty"`
	URL        string `json:"url"`
	// Secret is the HMAC secret, or the Ed25519 private key ("whsk_...").
	Secret string `json:"secret"`
	// PublicKey is the new Ed25519 public key ("whpk_..."), for the
	// endpoint's receiver; empty for HMAC.
	PublicKey string `json:"public_key,omitempty"`
}

// ResetSecrets gives every endpoint of the registry database db a new
// signing secret sealed with box, of the algorithm of its current one (a new
// Ed25519 key pair for an Ed25519 endpoint), dropping its previous ones
// (which may not open), and calls each with every new secret, for the endpoints' owners.
// It returns how many endpoints it changed.
func ResetSecrets(ctx context.Context, db *mongo.Database, box *secretbox.Box, each func(NewSecret) error) (int, error) {
	st := newMongoStore(db)
	docs, err := findAll[endpointDoc](ctx, st.endpoints, bson.D{}, bson.D{{Key: "_id", Value: 1}}, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range docs {
		secret, publicKey, err := newSecret("secret", d.algorithm(), "")
		if err != nil {
			return n, err
		}
		sealed, err := sealSecret(box, d.ID, secret)
		if err != nil {
			return n, err
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		e, err := st.modifyEndpoint(ctx, d.ProjectID, d.ID, func(d *endpointDoc) error {
			d.Secrets = []secretDoc{{Value: sealed, PublicKey: publicKey}}
			d.UpdateTime = now
			return nil
		})
		if errors.Is(err, errNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("reset the secret of endpoint %s: %w", d.ID, err)
		}
		n++
		if err := each(NewSecret{ProjectID: e.ProjectID, EndpointID: e.ID, OwnerID: e.OwnerID, URL: e.URL, Secret: secret, PublicKey: publicKey}); err != nil {
			return n, err
		}
	}
	m, err := resetMetaSecrets(ctx, st, box, each)
	return n + m, err
}

// resetMetaSecrets is ResetSecrets for the projects' meta events, each
// written as the secret of the project's meta endpoint.
func resetMetaSecrets(ctx context.Context, st *mongoStore, box *secretbox.Box, each func(NewSecret) error) (int, error) {
	projects, err := findAll[projectDoc](ctx, st.projects, bson.D{{Key: "meta_events", Value: bson.D{{Key: "$exists", Value: true}}}}, bson.D{{Key: "_id", Value: 1}}, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range projects {
		secret := generateSecret()
		sealed, err := sealSecret(box, metaevent.EndpointID(p.ID), secret)
		if err != nil {
			return n, err
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		d, err := st.modifyProject(ctx, p.ID, func(p *projectDoc) error {
			if p.MetaEvents != nil {
				p.MetaEvents.Secret, p.MetaEvents.UpdateTime = sealed, now
			}
			return nil
		})
		if errors.Is(err, errNotFound) || (err == nil && d.MetaEvents == nil) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("reset the meta events secret of project %s: %w", p.ID, err)
		}
		n++
		if err := each(NewSecret{ProjectID: d.ID, EndpointID: metaevent.EndpointID(d.ID), URL: d.MetaEvents.URL, Secret: secret}); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Reseal seals every endpoint secret sealed with oldBox again with newBox,
// so that a registry can change its secret key. Secrets newBox already
// opens are left as they are, so running it twice is harmless. It returns
// how many endpoints it changed, and fails, naming the endpoint, on a
// secret that neither key opens.
func Reseal(ctx context.Context, db *mongo.Database, oldBox, newBox *secretbox.Box) (int, error) {
	st := newMongoStore(db)
	docs, err := findAll[endpointDoc](ctx, st.endpoints, bson.D{}, bson.D{{Key: "_id", Value: 1}}, 0)
	if err != nil {
		return 0, err
	}
	n, err := countChanged(docs, func(d endpointDoc) (bool, error) {
		changed := false
		_, err := st.modifyEndpoint(ctx, d.ProjectID, d.ID, func(d *endpointDoc) error {
			changed = false
			for i, sd := range d.Secrets {
				if _, err := newBox.Open(sd.Value, d.ID); err == nil {
					continue
				}
				plain, err := openSecret(oldBox, d.ID, sd.Value)
				if err != nil {
					return fmt.Errorf("endpoint %s (project %s): neither the old nor the new key opens its secret; give it a new one with RotateEndpointSecret, or all of them with `hookmesh reset-secrets`", d.ID, d.ProjectID)
				}
				sealed, err := sealSecret(newBox, d.ID, plain)
				if err != nil {
					return err
				}
				d.Secrets[i].Value = sealed
				changed = true
			}
			return nil
		})
		return changed, err
	})
	if err != nil {
		return n, err
	}
	m, err := resealMeta(ctx, st, oldBox, newBox)
	return n + m, err
}

// resealMeta is Reseal for the projects' meta events secrets, each counted
// as the secret of the project's meta endpoint.
func resealMeta(ctx context.Context, st *mongoStore, oldBox, newBox *secretbox.Box) (int, error) {
	projects, err := findAll[projectDoc](ctx, st.projects, bson.D{{Key: "meta_events", Value: bson.D{{Key: "$exists", Value: true}}}}, bson.D{{Key: "_id", Value: 1}}, 0)
	if err != nil {
		return 0, err
	}
	return countChanged(projects, func(p projectDoc) (bool, error) {
		changed := false
		_, err := st.modifyProject(ctx, p.ID, func(p *projectDoc) error {
			changed = false
			if p.MetaEvents == nil {
				return nil
			}
			id := metaevent.EndpointID(p.ID)
			if _, err := newBox.Open(p.MetaEvents.Secret, id); err == nil {
				return nil
			}
			plain, err := openSecret(oldBox, id, p.MetaEvents.Secret)
			if err != nil {
				return fmt.Errorf("project %s: neither the old nor the new key opens its meta events secret; give it a new one with RotateMetaEventsSecret", p.ID)
			}
			if p.MetaEvents.Secret, err = sealSecret(newBox, id, plain); err != nil {
				return err
			}
			changed = true
			return nil
		})
		return changed, err
	})
}

// countChanged applies modify to each of docs and counts those it changed;
// a document deleted meanwhile (errNotFound) is skipped. On an error it
// returns the count so far.
func countChanged[T any](docs []T, modify func(T) (bool, error)) (int, error) {
	n := 0
	for _, d := range docs {
		changed, err := modify(d)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}
