package registry

import (
	"fmt"
	"github.com/hookmesh/hookmesh/internal/secretbox"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// Stored names of enum values: short and independent of the proto's.
const (
	statusActive   = "active"
	statusPaused   = "paused"
	statusDisabled = "disabled"

	strategyLinear      = "linear"
	strategyExponential = "exponential"
)

func strategyName(s registryv1.RetryStrategy) string {
	if s == registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR {
		return strategyLinear
	}
	return strategyExponential
}

func strategyFromName(s string) registryv1.RetryStrategy {
	switch s {
	case strategyLinear:
		return registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR
	case strategyExponential:
		return registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL
	}
	return registryv1.RetryStrategy_RETRY_STRATEGY_UNSPECIFIED
}

func statusFromName(s string) registryv1.EndpointStatus {
	switch s {
	case statusActive:
		return registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE
	case statusPaused:
		return registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED
	case statusDisabled:
		return registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED
	}
	return registryv1.EndpointStatus_ENDPOINT_STATUS_UNSPECIFIED
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (d *retryDoc) proto() *registryv1.RetryPolicy {
	if d == nil {
		return nil
	}
	return &registryv1.RetryPolicy{
		Strategy:        strategyFromName(d.Strategy),
		IntervalSeconds: uint32(d.IntervalSeconds),
		MaxAttempts:     uint32(d.MaxAttempts),
	}
}

func (d *signatureDoc) proto() *registryv1.SignatureSettings {
	return &registryv1.SignatureSettings{Header: d.Header, Advanced: d.Advanced}
}

// disableAfter is how many failed attempts in a row disable an endpoint of
// the project: 0 (never) unless the project asks for it, 10 by default.
func (d *projectDoc) disableAfter() uint32 {
	if !d.DisableEndpointOnFailure {
		return 0
	}
	if d.DisableAfterFailures == 0 {
		return 10
	}
	return d.DisableAfterFailures
}

// retentionDays is how many days the project's history is kept.
func (d *projectDoc) retentionDays() int32 {
	if d.Retention <= 0 {
		return DefaultRetentionDays
	}
	return d.Retention
}

func (d *projectDoc) proto() *registryv1.Project {
	return &registryv1.Project{
		Id:                           d.ID,
		Name:                         d.Name,
		RetryPolicy:                  d.RetryPolicy.proto(),
		Signature:                    d.Signature.proto(),
		DisableEndpointOnFailure:     d.DisableEndpointOnFailure,
		DisableEndpointAfterFailures: d.DisableAfterFailures,
		Retention:                    d.retentionDays(),
		CreateTime:                   timestamp(d.CreateTime),
		UpdateTime:                   timestamp(d.UpdateTime),
		MetaEvents:                   d.MetaEvents.proto(d.ID),
	}
}

func (d *apiKeyDoc) proto() *registryv1.APIKey {
	k := &registryv1.APIKey{
		Id:         d.KeyID,
		ProjectId:  d.ProjectID,
		Name:       d.Name,
		Prefix:     d.Prefix,
		CreateTime: timestamp(d.CreateTime),
	}
	if d.RevokeTime != nil {
		k.RevokeTime = timestamp(*d.RevokeTime)
	}
	return k
}

func (d *rateLimitDoc) proto() *registryv1.RateLimit {
	if d == nil {
		return nil
	}
	return &registryv1.RateLimit{Count: uint32(d.Count), DurationSeconds: uint32(d.DurationSeconds)}
}

func headersMap(h []headerDoc) map[string]string {
	if len(h) == 0 {
		return nil
	}
	m := make(map[string]string, len(h))
	for _, e := range h {
		m[e.Name] = e.Value
	}
	return m
}

// proto returns the endpoint as the public API shows it: without secret.
func (d *endpointDoc) proto() *registryv1.Endpoint {
	return &registryv1.Endpoint{
		Id:             d.ID,
		ProjectId:      d.ProjectID,
		Url:            d.URL,
		OwnerId:        d.OwnerID,
		Name:           d.Name,
		Description:    d.Description,
		TimeoutSeconds: uint32(d.TimeoutSeconds),
		RateLimit:      d.RateLimit.proto(),
		CustomHeaders:  headersMap(d.CustomHeaders),
		Status:         statusFromName(d.Status),
		CreateTime:     timestamp(d.CreateTime),
		UpdateTime:     timestamp(d.UpdateTime),

		SignatureAlgorithm: d.algorithm(),
		PublicKey:          d.publicKey(),
		DisabledReason:     d.DisabledReason,
		DisableTime:        optionalTimestamp(d.DisableTime),
	}
}

func optionalTimestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamp(*t)
}

// algorithm is the signature algorithm of the endpoint's current secret.
func (d *endpointDoc) algorithm() registryv1.SignatureAlgorithm {
	if d.publicKey() != "" {
		return registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_ED25519
	}
	return registryv1.SignatureAlgorithm_SIGNATURE_ALGORITHM_HMAC_SHA256
}

// publicKey is the current secret's Ed25519 public key, "" for HMAC.
func (d *endpointDoc) publicKey() string {
	if len(d.Secrets) == 0 {
		return ""
	}
	return d.Secrets[0].PublicKey
}

// protoWithSecret returns the endpoint with its current secret, for the
// only two responses that show it.
func (d *endpointDoc) protoWithSecret(box *secretbox.Box) (*registryv1.Endpoint, error) {
	e := d.proto()
	if len(d.Secrets) > 0 {
		secret, err := openSecret(box, d.ID, d.Secrets[0].Value)
		if err != nil {
			return nil, err
		}
		e.Secret = secret
	}
	return e, nil
}

// liveSecrets returns the secrets that have not expired at now, opened,
// the current one first.
func (d *endpointDoc) liveSecrets(box *secretbox.Box, now time.Time) ([]*registryv1.Secret, error) {
	out := make([]*registryv1.Secret, 0, len(d.Secrets))
	for _, sd := range d.Secrets {
		if sd.ExpireTime != nil && !now.Before(*sd.ExpireTime) {
			continue
		}
		secret, err := openSecret(box, d.ID, sd.Value)
		if err != nil {
			return nil, err
		}
		// Value is the secret as the user has it ("whsec_..." when
		// generated); the deliverer derives each signature's key from it.
		s := &registryv1.Secret{Value: []byte(secret)}
		if sd.ExpireTime != nil {
			s.ExpireTime = timestamp(*sd.ExpireTime)
		}
		out = append(out, s)
	}
	return out, nil
}

// target returns what a deliverer needs to send to the endpoint. When a
// secret cannot be opened (the registry runs with another secret key than
// the one that sealed it), the target has no secret at all, so that the
// deliverer ends the delivery FAILED instead of signing with some of the
// secrets only; unreadable is then the reason, for the log.
func (d *endpointDoc) target(box *secretbox.Box, p *projectDoc, retry *retryDoc, now time.Time) (t *registryv1.Target, unreadable error) {
	secrets, err := d.liveSecrets(box, now)
	if err != nil {
		secrets, unreadable = nil, err
	}
	return &registryv1.Target{
		EndpointId:           d.ID,
		ProjectId:            d.ProjectID,
		Url:                  d.URL,
		Status:               statusFromName(d.Status),
		TimeoutSeconds:       uint32(d.TimeoutSeconds),
		CustomHeaders:        headersMap(d.CustomHeaders),
		Secrets:              secrets,
		RateLimit:            d.RateLimit.proto(),
		Signature:            p.Signature.proto(),
		RetryPolicy:          retry.proto(),
		OwnerId:              d.OwnerID,
		DisableAfterFailures: p.disableAfter(),
		MetaEvents:           p.MetaEvents.filter(),
	}, unreadable
}

func (d *subscriptionDoc) proto() (*registryv1.Subscription, error) {
	body, err := d.Filter.body()
	if err != nil {
		return nil, fmt.Errorf("subscription %s: body filter: %w", d.ID, err)
	}
	headers, err := d.Filter.headers()
	if err != nil {
		return nil, fmt.Errorf("subscription %s: headers filter: %w", d.ID, err)
	}
	return &registryv1.Subscription{
		Id:         d.ID,
		ProjectId:  d.ProjectID,
		EndpointId: d.EndpointID,
		Name:       d.Name,
		Filter: &registryv1.Filter{
			EventTypes: d.Filter.EventTypes,
			Body:       body,
			Headers:    headers,
		},
		RetryPolicy: d.RetryPolicy.proto(),
		CreateTime:  timestamp(d.CreateTime),
		UpdateTime:  timestamp(d.UpdateTime),
	}, nil
}
