package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// wantErr fails unless err has code and its message contains msg.
func wantErr(t *testing.T, err error, code connect.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v %q", code, msg)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("got code %v (%v), want %v", got, err, code)
	}
	var ce *connect.Error
	if msg != "" && (!errors.As(err, &ce) || !strings.Contains(ce.Message(), msg)) {
		t.Fatalf("got message %q, want it to contain %q", err, msg)
	}
}

// must returns v, failing the test given to the returned function if err
// is not nil: must(c.GetProject(ctx, key, req))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

// newProject creates a project with the admin key and returns it with its
// first API key.
func newProject(t *testing.T, c *apiClient, name string) (*registryv1.Project, string) {
	t.Helper()
	resp := must(c.CreateProject(t.Context(), testAdminKey, &registryv1.CreateProjectRequest{Name: name}))(t)
	return resp.Project, resp.Key
}

func newEndpoint(t *testing.T, c *apiClient, key string, req *registryv1.CreateEndpointRequest) *registryv1.Endpoint {
	t.Helper()
	if req.Url == "" {
		req.Url = "https://example.com/hooks"
	}
	return must(c.CreateEndpoint(t.Context(), key, req))(t).Endpoint
}

func TestCreateProject(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		resp := must(c.CreateProject(ctx, testAdminKey, &registryv1.CreateProjectRequest{Name: "acme"}))(t)
		p := resp.Project
		if !strings.HasPrefix(p.Id, "prj_") || p.Name != "acme" {
			t.Fatalf("project = %v", p)
		}
		wantRetry := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL, IntervalSeconds: 10, MaxAttempts: 10}
		if !proto.Equal(p.RetryPolicy, wantRetry) || p.Signature.GetHeader() != "X-Hookmesh-Signature" {
			t.Fatalf("defaults: retry %v, signature %v", p.RetryPolicy, p.Signature)
		}
		if !strings.HasPrefix(resp.Key, resp.ApiKey.Prefix+"_") || len(resp.ApiKey.Prefix) != len("hm_")+8 {
			t.Fatalf("key %q does not start with its prefix %q", resp.Key, resp.ApiKey.Prefix)
		}
		if secret := strings.TrimPrefix(resp.Key, resp.ApiKey.Prefix+"_"); len(must(base64.RawURLEncoding.DecodeString(secret))(t)) < 32 {
			t.Fatalf("key secret %q is shorter than 32 bytes", secret)
		}
		// The key works for its own project, and the stored project reads back equal.
		got := must(c.GetProject(ctx, resp.Key, &registryv1.GetProjectRequest{ProjectId: p.Id}))(t)
		if !proto.Equal(got.Project, p) {
			t.Fatalf("GetProject = %v, want %v", got.Project, p)
		}

		custom := must(c.CreateProject(ctx, testAdminKey, &registryv1.CreateProjectRequest{
			Name:        "custom",
			RetryPolicy: &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 60},
			Signature:   &registryv1.SignatureSettings{Header: "X-Acme-Signature", Advanced: true},
		}))(t).Project
		if custom.RetryPolicy.Strategy != registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR || custom.RetryPolicy.IntervalSeconds != 60 ||
			custom.RetryPolicy.MaxAttempts != 10 || custom.Signature.Header != "X-Acme-Signature" || !custom.Signature.Advanced {
			t.Fatalf("custom project = %v", custom)
		}

		upd := must(c.UpdateProject(ctx, resp.Key, &registryv1.UpdateProjectRequest{
			ProjectId: p.Id, Name: proto.String("acme 2"), DisableEndpointOnFailure: proto.Bool(true),
		}))(t).Project
		if upd.Name != "acme 2" || !upd.DisableEndpointOnFailure || !proto.Equal(upd.RetryPolicy, wantRetry) {
			t.Fatalf("updated project = %v", upd)
		}

		list := must(c.ListProjects(ctx, testAdminKey, &registryv1.ListProjectsRequest{PageSize: 500}))(t)
		var names []string
		for _, p := range list.Projects {
			names = append(names, p.Id)
		}
		if !slices.Contains(names, p.Id) || !slices.Contains(names, custom.Id) || !slices.IsSorted(names) {
			t.Fatalf("ListProjects = %v", names)
		}
	})
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p1, key1 := newProject(t, c, "one")
		p2, key2 := newProject(t, c, "two")
		ep1 := newEndpoint(t, c, key1, &registryv1.CreateEndpointRequest{ProjectId: p1.Id})

		tests := []struct {
			name string
			key  string
			call func(key string) error
			code connect.Code // 0: success
			msg  string
		}{
			{"own key reads own project", key1, func(k string) error {
				_, err := c.GetProject(ctx, k, &registryv1.GetProjectRequest{ProjectId: p1.Id})
				return err
			}, 0, ""},
			{"admin reads any project", testAdminKey, func(k string) error {
				_, err := c.GetEndpoint(ctx, k, &registryv1.GetEndpointRequest{ProjectId: p1.Id, EndpointId: ep1.Id})
				return err
			}, 0, ""},
			{"other project's key gets NotFound for the project", key2, func(k string) error {
				_, err := c.GetProject(ctx, k, &registryv1.GetProjectRequest{ProjectId: p1.Id})
				return err
			}, connect.CodeNotFound, fmt.Sprintf("project %q not found", p1.Id)},
			{"other project's key gets NotFound for an endpoint", key2, func(k string) error {
				_, err := c.GetEndpoint(ctx, k, &registryv1.GetEndpointRequest{ProjectId: p1.Id, EndpointId: ep1.Id})
				return err
			}, connect.CodeNotFound, fmt.Sprintf("project %q not found", p1.Id)},
			{"endpoint named in another project is NotFound", key2, func(k string) error {
				_, err := c.GetEndpoint(ctx, k, &registryv1.GetEndpointRequest{ProjectId: p2.Id, EndpointId: ep1.Id})
				return err
			}, connect.CodeNotFound, fmt.Sprintf("endpoint %q not found in project %q", ep1.Id, p2.Id)},
			{"other project's key cannot list its keys", key2, func(k string) error {
				_, err := c.ListAPIKeys(ctx, k, &registryv1.ListAPIKeysRequest{ProjectId: p1.Id})
				return err
			}, connect.CodeNotFound, "not found"},
			{"wrong key", "hm_abcdefgh_not-a-key", func(k string) error {
				_, err := c.GetProject(ctx, k, &registryv1.GetProjectRequest{ProjectId: p1.Id})
				return err
			}, connect.CodeUnauthenticated, "invalid or revoked API key"},
			{"malformed key", "nonsense", func(k string) error {
				_, err := c.GetProject(ctx, k, &registryv1.GetProjectRequest{ProjectId: p1.Id})
				return err
			}, connect.CodeUnauthenticated, ""},
			{"missing key", "", func(k string) error {
				_, err := c.GetProject(ctx, k, &registryv1.GetProjectRequest{ProjectId: p1.Id})
				return err
			}, connect.CodeUnauthenticated, "missing API key"},
			{"project key cannot create projects", key1, func(k string) error {
				_, err := c.CreateProject(ctx, k, &registryv1.CreateProjectRequest{Name: "x"})
				return err
			}, connect.CodePermissionDenied, "admin key"},
			{"project key cannot list projects", key1, func(k string) error {
				_, err := c.ListProjects(ctx, k, &registryv1.ListProjectsRequest{})
				return err
			}, connect.CodePermissionDenied, "admin key"},
			{"project key cannot delete its project", key1, func(k string) error {
				_, err := c.DeleteProject(ctx, k, &registryv1.DeleteProjectRequest{ProjectId: p1.Id})
				return err
			}, connect.CodePermissionDenied, "admin key"},
			{"internal service refuses project keys", key1, func(k string) error {
				_, err := c.GetTarget(ctx, k, &registryv1.GetTargetRequest{ProjectId: p1.Id, EndpointId: ep1.Id})
				return err
			}, connect.CodePermissionDenied, "admin key"},
			{"internal service refuses missing keys", "", func(k string) error {
				_, err := c.ResolveTargets(ctx, k, &registryv1.ResolveTargetsRequest{ProjectId: p1.Id, EventType: "a", Broadcast: true})
				return err
			}, connect.CodeUnauthenticated, ""},
			{"internal AuthenticateKey refuses project keys", key1, func(k string) error {
				_, err := c.AuthenticateKey(ctx, k, &registryv1.AuthenticateKeyRequest{Key: key1})
				return err
			}, connect.CodePermissionDenied, ""},
			{"internal service takes the admin key", testAdminKey, func(k string) error {
				resp, err := c.AuthenticateKey(ctx, k, &registryv1.AuthenticateKeyRequest{Key: key1})
				if err == nil && resp.ProjectId != p1.Id {
					return fmt.Errorf("AuthenticateKey = %v, want project %s", resp, p1.Id)
				}
				return err
			}, 0, ""},
			{"internal AuthenticateKey of an unknown key", testAdminKey, func(k string) error {
				_, err := c.AuthenticateKey(ctx, k, &registryv1.AuthenticateKeyRequest{Key: "hm_abcdefgh_unknown"})
				return err
			}, connect.CodeNotFound, "API key not found"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call(tt.key)
				if tt.code == 0 {
					if err != nil {
						t.Fatalf("unexpected error: %v", err)
					}
					return
				}
				wantErr(t, err, tt.code, tt.msg)
			})
		}
	})
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key1 := newProject(t, c, "keys")
		created := must(c.CreateAPIKey(ctx, key1, &registryv1.CreateAPIKeyRequest{ProjectId: p.Id, Name: "ci"}))(t)
		key2 := created.Key
		// The new key works (and is now cached as valid).
		must(c.GetProject(ctx, key2, &registryv1.GetProjectRequest{ProjectId: p.Id}))(t)

		list := must(c.ListAPIKeys(ctx, key1, &registryv1.ListAPIKeysRequest{ProjectId: p.Id}))(t).ApiKeys
		if len(list) != 2 || list[1].Id != created.ApiKey.Id || list[1].Name != "ci" {
			t.Fatalf("ListAPIKeys = %v", list)
		}
		secret := strings.TrimPrefix(key2, created.ApiKey.Prefix+"_")
		for _, k := range list {
			if strings.Contains(k.String(), secret) {
				t.Fatalf("ListAPIKeys shows a key's secret: %v", k)
			}
		}

		revoked := must(c.RevokeAPIKey(ctx, key1, &registryv1.RevokeAPIKeyRequest{ProjectId: p.Id, KeyId: created.ApiKey.Id}))(t).ApiKey
		if revoked.RevokeTime == nil {
			t.Fatalf("revoked key has no revoke_time: %v", revoked)
		}
		// Revocation takes effect at once, despite the cache.
		_, err := c.GetProject(ctx, key2, &registryv1.GetProjectRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeUnauthenticated, "invalid or revoked API key")
		_, err = c.AuthenticateKey(ctx, testAdminKey, &registryv1.AuthenticateKeyRequest{Key: key2})
		wantErr(t, err, connect.CodeNotFound, "")
		// The other key still works; revoking twice is harmless.
		must(c.RevokeAPIKey(ctx, key1, &registryv1.RevokeAPIKeyRequest{ProjectId: p.Id, KeyId: created.ApiKey.Id}))(t)
		_, err = c.RevokeAPIKey(ctx, key1, &registryv1.RevokeAPIKeyRequest{ProjectId: p.Id, KeyId: "key_nope"})
		wantErr(t, err, connect.CodeNotFound, fmt.Sprintf(`API key "key_nope" not found in project %q`, p.Id))
	})
}

func TestDeleteProject(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "doomed")
		other, otherKey := newProject(t, c, "survivor")
		ep := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
		otherEp := newEndpoint(t, c, otherKey, &registryv1.CreateEndpointRequest{ProjectId: other.Id})
		must(c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t)

		must(c.DeleteProject(ctx, testAdminKey, &registryv1.DeleteProjectRequest{ProjectId: p.Id}))(t)
		_, err := c.GetProject(ctx, key, &registryv1.GetProjectRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeUnauthenticated, "")
		_, err = c.GetProject(ctx, testAdminKey, &registryv1.GetProjectRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeNotFound, fmt.Sprintf("project %q not found", p.Id))
		_, err = c.GetEndpoint(ctx, testAdminKey, &registryv1.GetEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id})
		wantErr(t, err, connect.CodeNotFound, "")
		subs := must(c.ListSubscriptions(ctx, testAdminKey, &registryv1.ListSubscriptionsRequest{ProjectId: p.Id}))(t)
		if len(subs.Subscriptions) != 0 {
			t.Fatalf("subscriptions left: %v", subs.Subscriptions)
		}
		_, err = c.DeleteProject(ctx, testAdminKey, &registryv1.DeleteProjectRequest{ProjectId: p.Id})
		wantErr(t, err, connect.CodeNotFound, "")
		// Nothing of the other project went with it.
		must(c.GetEndpoint(ctx, otherKey, &registryv1.GetEndpointRequest{ProjectId: other.Id, EndpointId: otherEp.Id}))(t)
	})
}

func TestValidation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "validation")
		ep := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
		endpoint := func(mod func(*registryv1.CreateEndpointRequest)) func() error {
			return func() error {
				req := &registryv1.CreateEndpointRequest{ProjectId: p.Id, Url: "https://example.com/hook"}
				mod(req)
				_, err := c.CreateEndpoint(ctx, key, req)
				return err
			}
		}
		subscription := func(f *registryv1.Filter) func() error {
			return func() error {
				_, err := c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: ep.Id, Filter: f})
				return err
			}
		}
		project := func(req *registryv1.CreateProjectRequest) func() error {
			return func() error {
				_, err := c.CreateProject(ctx, testAdminKey, req)
				return err
			}
		}
		deep := strings.Repeat(`{"a": `, 11) + `"leaf"` + strings.Repeat(`}`, 11)

		tests := []struct {
			name string
			call func() error
			code connect.Code
			msg  string
		}{
			{"missing project name", project(&registryv1.CreateProjectRequest{}),
				connect.CodeInvalidArgument, "name: must not be empty"},
			{"long project name", project(&registryv1.CreateProjectRequest{Name: strings.Repeat("x", 201)}),
				connect.CodeInvalidArgument, "name: must be at most 200 characters"},
			{"retry interval too long", project(&registryv1.CreateProjectRequest{Name: "x", RetryPolicy: &registryv1.RetryPolicy{IntervalSeconds: 86401}}),
				connect.CodeInvalidArgument, "retry_policy.interval_seconds: must be between 1 and 86400"},
			{"too many attempts", project(&registryv1.CreateProjectRequest{Name: "x", RetryPolicy: &registryv1.RetryPolicy{MaxAttempts: 101}}),
				connect.CodeInvalidArgument, "retry_policy.max_attempts"},
			{"bad signature header", project(&registryv1.CreateProjectRequest{Name: "x", Signature: &registryv1.SignatureSettings{Header: "X Sig"}}),
				connect.CodeInvalidArgument, `signature.header: must be a valid HTTP header name, got "X Sig"`},
			{"reserved signature header", project(&registryv1.CreateProjectRequest{Name: "x", Signature: &registryv1.SignatureSettings{Header: "webhook-signature"}}),
				connect.CodeInvalidArgument, "signature.header"},
			{"malformed url", endpoint(func(r *registryv1.CreateEndpointRequest) { r.Url = "foo" }),
				connect.CodeInvalidArgument, `url: must be an absolute http or https URL, got "foo"`},
			{"ftp url", endpoint(func(r *registryv1.CreateEndpointRequest) { r.Url = "ftp://example.com/x" }),
				connect.CodeInvalidArgument, `url: must be an absolute http or https URL, got "ftp://example.com/x"`},
			{"missing url", endpoint(func(r *registryv1.CreateEndpointRequest) { r.Url = "" }),
				connect.CodeInvalidArgument, "url: must not be empty"},
			{"url with credentials", endpoint(func(r *registryv1.CreateEndpointRequest) { r.Url = "https://user:pw@example.com/" }),
				connect.CodeInvalidArgument, "url: must not contain user information"},
			{"unknown project", func() error {
				_, err := c.CreateEndpoint(ctx, testAdminKey, &registryv1.CreateEndpointRequest{ProjectId: "prj_nope", Url: "https://example.com"})
				return err
			}, connect.CodeNotFound, `project "prj_nope" not found`},
			{"reserved custom header", endpoint(func(r *registryv1.CreateEndpointRequest) {
				r.CustomHeaders = map[string]string{"Content-Type": "text/plain"}
			}),
				connect.CodeInvalidArgument, `custom_headers["Content-Type"]`},
			{"hookmesh custom header", endpoint(func(r *registryv1.CreateEndpointRequest) {
				r.CustomHeaders = map[string]string{"x-hookmesh-event-type": "a"}
			}),
				connect.CodeInvalidArgument, `custom_headers["x-hookmesh-event-type"]`},
			{"proxy custom header", endpoint(func(r *registryv1.CreateEndpointRequest) {
				r.CustomHeaders = map[string]string{"Proxy-Authorization": "a"}
			}),
				connect.CodeInvalidArgument, `custom_headers["Proxy-Authorization"]`},
			{"custom header with a bad name", endpoint(func(r *registryv1.CreateEndpointRequest) { r.CustomHeaders = map[string]string{"Bad Name": "a"} }),
				connect.CodeInvalidArgument, `custom_headers["Bad Name"]: is not a valid HTTP header name`},
			{"custom header value with CRLF", endpoint(func(r *registryv1.CreateEndpointRequest) {
				r.CustomHeaders = map[string]string{"X-Tenant": "a\r\nX-Evil: 1"}
			}),
				connect.CodeInvalidArgument, `custom_headers["X-Tenant"]: value must not contain CR, LF, NUL`},
			{"timeout too long", endpoint(func(r *registryv1.CreateEndpointRequest) { r.TimeoutSeconds = 301 }),
				connect.CodeInvalidArgument, "timeout_seconds: must be between 1 and 300, got 301"},
			{"rate limit without count", endpoint(func(r *registryv1.CreateEndpointRequest) { r.RateLimit = &registryv1.RateLimit{DurationSeconds: 10} }),
				connect.CodeInvalidArgument, "rate_limit.count"},
			{"rate limit too long", endpoint(func(r *registryv1.CreateEndpointRequest) {
				r.RateLimit = &registryv1.RateLimit{Count: 1, DurationSeconds: 3601}
			}),
				connect.CodeInvalidArgument, "rate_limit.duration_seconds"},
			{"short secret", endpoint(func(r *registryv1.CreateEndpointRequest) { r.Secret = "short" }),
				connect.CodeInvalidArgument, "secret: must be 8 to 256 characters long, got 5"},
			{"owner id with NUL", endpoint(func(r *registryv1.CreateEndpointRequest) { r.OwnerId = "a\x00b" }),
				connect.CodeInvalidArgument, "owner_id: must not contain NUL"},
			{"bad event type", subscription(&registryv1.Filter{EventTypes: []string{"invoice.paid", "inv*"}}),
				connect.CodeInvalidArgument, `filter.event_types[1]: "inv*" is not an event type`},
			{"empty event type", subscription(&registryv1.Filter{EventTypes: []string{""}}),
				connect.CodeInvalidArgument, "filter.event_types[0]: must not be empty"},
			{"body filter too deep", subscription(&registryv1.Filter{Body: deep}),
				connect.CodeInvalidArgument, "nested deeper than the limit of 10 levels"},
			{"unknown filter operator", subscription(&registryv1.Filter{Body: `{"amount": {"$foo": 1}}`}),
				connect.CodeInvalidArgument, `filter.body.amount.$foo: unknown operator "$foo"`},
			{"bad filter regex", subscription(&registryv1.Filter{Body: `{"customer": {"name": {"$regex": "(unclosed"}}}`}),
				connect.CodeInvalidArgument, "filter.body.customer.name.$regex: invalid regular expression"},
			{"wrong filter operand", subscription(&registryv1.Filter{Headers: `{"x-tier": {"$in": "gold"}}`}),
				connect.CodeInvalidArgument, "filter.headers.x-tier.$in: "},
			{"body filter not an object", subscription(&registryv1.Filter{Body: `[{"amount": 1}]`}),
				connect.CodeInvalidArgument, "filter.body: must be a JSON object, as in"},
			{"body filter not JSON", subscription(&registryv1.Filter{Body: `{amount: 1}`}),
				connect.CodeInvalidArgument, "filter.body: is not valid JSON"},
			{"body filter with a repeated key", subscription(&registryv1.Filter{Body: `{"amount": 1, "amount": 2}`}),
				connect.CodeInvalidArgument, "filter.body.amount: key appears twice in the same object"},
			{"subscription of an unknown endpoint", func() error {
				_, err := c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: "ep_nope"})
				return err
			}, connect.CodeNotFound, fmt.Sprintf(`endpoint "ep_nope" not found in project %q`, p.Id)},
			{"subscription without endpoint", func() error {
				_, err := c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id})
				return err
			}, connect.CodeInvalidArgument, "endpoint_id: must not be empty"},
			{"page too large", func() error {
				_, err := c.ListEndpoints(ctx, key, &registryv1.ListEndpointsRequest{ProjectId: p.Id, PageSize: 501})
				return err
			}, connect.CodeInvalidArgument, "page_size: must be at most 500, got 501"},
			{"bad page token", func() error {
				_, err := c.ListEndpoints(ctx, key, &registryv1.ListEndpointsRequest{ProjectId: p.Id, PageToken: "!!"})
				return err
			}, connect.CodeInvalidArgument, "page_token:"},
			{"custom headers without replace", func() error {
				_, err := c.UpdateEndpoint(ctx, key, &registryv1.UpdateEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id, CustomHeaders: map[string]string{"X-A": "b"}})
				return err
			}, connect.CodeInvalidArgument, "custom_headers: are applied only with replace_custom_headers"},
			{"update to a bad url", func() error {
				_, err := c.UpdateEndpoint(ctx, key, &registryv1.UpdateEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id, Url: proto.String("http://")})
				return err
			}, connect.CodeInvalidArgument, `url: must be an absolute http or https URL, got "http://"`},
			{"previous secret kept too long", func() error {
				_, err := c.RotateEndpointSecret(ctx, key, &registryv1.RotateEndpointSecretRequest{ProjectId: p.Id, EndpointId: ep.Id, PreviousSecretTtlSeconds: 7*24*3600 + 1})
				return err
			}, connect.CodeInvalidArgument, "previous_secret_ttl_seconds: must be at most 604800"},
			{"missing endpoint id", func() error {
				_, err := c.GetEndpoint(ctx, key, &registryv1.GetEndpointRequest{ProjectId: p.Id})
				return err
			}, connect.CodeInvalidArgument, "endpoint_id: must not be empty"},
			{"two target shapes", func() error {
				_, err := c.ResolveTargets(ctx, testAdminKey, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, EventType: "a", EndpointId: ep.Id, Broadcast: true})
				return err
			}, connect.CodeInvalidArgument, "exactly one must be set, got 2"},
			{"no target shape", func() error {
				_, err := c.ResolveTargets(ctx, testAdminKey, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, EventType: "a"})
				return err
			}, connect.CodeInvalidArgument, "exactly one must be set, got 0"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantErr(t, tt.call(), tt.code, tt.msg)
			})
		}
		// None of the refused endpoints was created.
		list := must(c.ListEndpoints(ctx, key, &registryv1.ListEndpointsRequest{ProjectId: p.Id}))(t)
		if len(list.Endpoints) != 1 {
			t.Fatalf("ListEndpoints = %d endpoints, want 1", len(list.Endpoints))
		}
	})
}

func TestEndpointLifecycle(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "endpoints")
		ep := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{
			ProjectId:     p.Id,
			Url:           "https://example.com/a",
			OwnerId:       "cust_1",
			Name:          "first",
			CustomHeaders: map[string]string{"X-Tenant": "t1"},
		})
		secret, ok := strings.CutPrefix(ep.Secret, "whsec_")
		if !ok || len(must(base64.StdEncoding.DecodeString(secret))(t)) != 32 {
			t.Fatalf("generated secret = %q, want whsec_ and base64 of 32 bytes", ep.Secret)
		}
		if ep.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE || ep.TimeoutSeconds != 30 || ep.CustomHeaders["X-Tenant"] != "t1" {
			t.Fatalf("created endpoint = %v", ep)
		}
		given := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id, Secret: "my-own-secret"})
		if given.Secret != "my-own-secret" {
			t.Fatalf("given secret came back as %q", given.Secret)
		}

		// The secret is never shown again.
		got := must(c.GetEndpoint(ctx, key, &registryv1.GetEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Endpoint
		if got.Secret != "" {
			t.Fatalf("GetEndpoint shows the secret %q", got.Secret)
		}
		withoutSecret := proto.CloneOf(ep)
		withoutSecret.Secret = ""
		if !proto.Equal(got, withoutSecret) {
			t.Fatalf("GetEndpoint = %v, want %v", got, withoutSecret)
		}
		for _, e := range must(c.ListEndpoints(ctx, key, &registryv1.ListEndpointsRequest{ProjectId: p.Id}))(t).Endpoints {
			if e.Secret != "" {
				t.Fatalf("ListEndpoints shows a secret: %v", e)
			}
		}
		target := func() *registryv1.Target {
			t.Helper()
			return must(c.GetTarget(ctx, testAdminKey, &registryv1.GetTargetRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Target
		}
		tg := target()
		if len(tg.Secrets) != 1 || string(tg.Secrets[0].Value) != ep.Secret || tg.Url != ep.Url || tg.OwnerId != "cust_1" ||
			tg.Signature.GetHeader() != "X-Hookmesh-Signature" || tg.RetryPolicy.GetMaxAttempts() != 10 {
			t.Fatalf("GetTarget = %v", tg)
		}

		// Update changes only what is set.
		upd := must(c.UpdateEndpoint(ctx, key, &registryv1.UpdateEndpointRequest{
			ProjectId: p.Id, EndpointId: ep.Id,
			Url:       proto.String("https://example.com/b"),
			RateLimit: &registryv1.RateLimit{Count: 10, DurationSeconds: 60},
		}))(t).Endpoint
		if upd.Url != "https://example.com/b" || upd.OwnerId != "cust_1" || upd.Name != "first" ||
			upd.RateLimit.GetCount() != 10 || upd.CustomHeaders["X-Tenant"] != "t1" || upd.Secret != "" {
			t.Fatalf("updated endpoint = %v", upd)
		}
		upd = must(c.UpdateEndpoint(ctx, key, &registryv1.UpdateEndpointRequest{
			ProjectId: p.Id, EndpointId: ep.Id,
			RateLimit:            &registryv1.RateLimit{},
			ReplaceCustomHeaders: true,
			CustomHeaders:        map[string]string{"X-Other": "o"},
		}))(t).Endpoint
		if upd.RateLimit != nil || len(upd.CustomHeaders) != 1 || upd.CustomHeaders["X-Other"] != "o" || upd.Url != "https://example.com/b" {
			t.Fatalf("updated endpoint = %v", upd)
		}

		// Pause and activate.
		paused := must(c.PauseEndpoint(ctx, key, &registryv1.PauseEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Endpoint
		if paused.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED || target().Status != registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED {
			t.Fatalf("paused endpoint = %v", paused)
		}
		active := must(c.ActivateEndpoint(ctx, key, &registryv1.ActivateEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Endpoint
		if active.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE {
			t.Fatalf("activated endpoint = %v", active)
		}

		// Rotation: the new secret signs first, the previous one until it expires.
		rot := must(c.RotateEndpointSecret(ctx, key, &registryv1.RotateEndpointSecretRequest{
			ProjectId: p.Id, EndpointId: ep.Id, PreviousSecretTtlSeconds: 3600,
		}))(t).Endpoint
		if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == ep.Secret {
			t.Fatalf("rotated secret = %q (previous %q)", rot.Secret, ep.Secret)
		}
		tg = target()
		if len(tg.Secrets) != 2 || string(tg.Secrets[0].Value) != rot.Secret || string(tg.Secrets[1].Value) != ep.Secret ||
			tg.Secrets[0].ExpireTime != nil || tg.Secrets[1].ExpireTime == nil {
			t.Fatalf("secrets after rotation = %v", tg.Secrets)
		}
		if d := time.Until(tg.Secrets[1].ExpireTime.AsTime()); d < 59*time.Minute || d > time.Hour {
			t.Fatalf("previous secret expires in %v, want about an hour", d)
		}
		if got := must(c.GetEndpoint(ctx, key, &registryv1.GetEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Endpoint; got.Secret != "" {
			t.Fatalf("GetEndpoint after rotation shows the secret %q", got.Secret)
		}

		rot2 := must(c.RotateEndpointSecret(ctx, key, &registryv1.RotateEndpointSecretRequest{
			ProjectId: p.Id, EndpointId: ep.Id, Secret: "third-secret", PreviousSecretTtlSeconds: 1,
		}))(t).Endpoint
		if rot2.Secret != "third-secret" {
			t.Fatalf("rotated to %q, want the given secret", rot2.Secret)
		}
		tg = target()
		if len(tg.Secrets) != 3 || string(tg.Secrets[0].Value) != "third-secret" {
			t.Fatalf("secrets after second rotation = %v", tg.Secrets)
		}
		// Both previous secrets now end within a second.
		time.Sleep(time.Until(tg.Secrets[1].ExpireTime.AsTime()) + 50*time.Millisecond)
		if tg = target(); len(tg.Secrets) != 1 || string(tg.Secrets[0].Value) != "third-secret" {
			t.Fatalf("secrets after the previous ones expired = %v", tg.Secrets)
		}

		must(c.RotateEndpointSecret(ctx, key, &registryv1.RotateEndpointSecretRequest{ProjectId: p.Id, EndpointId: ep.Id, Secret: "fourth-secret"}))(t)
		if tg = target(); len(tg.Secrets) != 1 || string(tg.Secrets[0].Value) != "fourth-secret" {
			t.Fatalf("a rotation with no ttl kept %v", tg.Secrets)
		}

		// Delete takes the endpoint's subscriptions with it.
		sub := must(c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t).Subscription
		must(c.DeleteEndpoint(ctx, key, &registryv1.DeleteEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id}))(t)
		_, err := c.GetEndpoint(ctx, key, &registryv1.GetEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id})
		wantErr(t, err, connect.CodeNotFound, fmt.Sprintf("endpoint %q not found in project %q", ep.Id, p.Id))
		_, err = c.GetSubscription(ctx, key, &registryv1.GetSubscriptionRequest{ProjectId: p.Id, SubscriptionId: sub.Id})
		wantErr(t, err, connect.CodeNotFound, "subscription")
		_, err = c.GetTarget(ctx, testAdminKey, &registryv1.GetTargetRequest{ProjectId: p.Id, EndpointId: ep.Id})
		wantErr(t, err, connect.CodeNotFound, "endpoint")
		_, err = c.DeleteEndpoint(ctx, key, &registryv1.DeleteEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id})
		wantErr(t, err, connect.CodeNotFound, "")
	})
}

func TestExpiredSecretsDroppedOnWrite(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	c := env.clients[0]
	ctx := t.Context()
	p, key := newProject(t, c, "expiry")
	ep := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
	must(c.RotateEndpointSecret(ctx, key, &registryv1.RotateEndpointSecretRequest{ProjectId: p.Id, EndpointId: ep.Id, PreviousSecretTtlSeconds: 1}))(t)
	stored := func() int {
		d := must(env.svc.store.endpoint(ctx, p.Id, ep.Id))(t)
		return len(d.Secrets)
	}
	if n := stored(); n != 2 {
		t.Fatalf("stored %d secrets after rotation, want 2", n)
	}
	time.Sleep(1100 * time.Millisecond)
	must(c.UpdateEndpoint(ctx, key, &registryv1.UpdateEndpointRequest{ProjectId: p.Id, EndpointId: ep.Id, Name: proto.String("renamed")}))(t)
	if n := stored(); n != 1 {
		t.Fatalf("stored %d secrets after a write past expiry, want 1", n)
	}
}

func TestResolveTargets(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "resolve")
		ep := func(owner string) string {
			return newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id, OwnerId: owner}).Id
		}
		sub := func(endpointID string, retry *registryv1.RetryPolicy, types ...string) {
			must(c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{
				ProjectId: p.Id, EndpointId: endpointID, Filter: &registryv1.Filter{EventTypes: types}, RetryPolicy: retry,
			}))(t)
		}
		linear := &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: 5, MaxAttempts: 3}
		a := ep("alice") // no subscription: everything
		b := ep("alice")
		sub(b, nil, "invoice.*")
		cc := ep("bob")
		sub(cc, linear, "user.created")
		sub(cc, nil, "invoice.paid")
		d := ep("bob")
		sub(d, nil) // no event types: everything
		must(c.PauseEndpoint(ctx, key, &registryv1.PauseEndpointRequest{ProjectId: p.Id, EndpointId: d}))(t)
		e := ep("")
		sub(e, nil, "*")
		otherProject, otherKey := newProject(t, c, "other")
		newEndpoint(t, c, otherKey, &registryv1.CreateEndpointRequest{ProjectId: otherProject.Id, OwnerId: "alice"})

		tests := []struct {
			name  string
			req   *registryv1.ResolveTargetsRequest
			want  []string
			retry map[string]registryv1.RetryStrategy // expected strategies by endpoint
		}{
			{"endpoint without subscriptions", &registryv1.ResolveTargetsRequest{EndpointId: a, EventType: "anything"}, []string{a}, nil},
			{"endpoint whose subscription excludes the type", &registryv1.ResolveTargetsRequest{EndpointId: b, EventType: "user.created"}, nil, nil},
			{"endpoint whose subscription takes the prefix", &registryv1.ResolveTargetsRequest{EndpointId: b, EventType: "invoice.paid"}, []string{b}, nil},
			{"prefix does not take the bare name", &registryv1.ResolveTargetsRequest{EndpointId: b, EventType: "invoice"}, nil, nil},
			{"subscription's retry override", &registryv1.ResolveTargetsRequest{EndpointId: cc, EventType: "user.created"}, []string{cc},
				map[string]registryv1.RetryStrategy{cc: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR}},
			{"project's retry policy through another subscription", &registryv1.ResolveTargetsRequest{EndpointId: cc, EventType: "invoice.paid"}, []string{cc},
				map[string]registryv1.RetryStrategy{cc: registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL}},
			{"fan-out", &registryv1.ResolveTargetsRequest{OwnerId: "alice", EventType: "invoice.paid"}, []string{a, b}, nil},
			{"fan-out excluding an endpoint", &registryv1.ResolveTargetsRequest{OwnerId: "alice", EventType: "user.created"}, []string{a}, nil},
			{"fan-out with a paused endpoint", &registryv1.ResolveTargetsRequest{OwnerId: "bob", EventType: "user.created"}, []string{cc, d},
				map[string]registryv1.RetryStrategy{cc: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, d: registryv1.RetryStrategy_RETRY_STRATEGY_EXPONENTIAL}},
			{"fan-out to an unknown owner", &registryv1.ResolveTargetsRequest{OwnerId: "carol", EventType: "user.created"}, nil, nil},
			{"broadcast of an invoice", &registryv1.ResolveTargetsRequest{Broadcast: true, EventType: "invoice.created"}, []string{a, b, d, e}, nil},
			{"broadcast of a user", &registryv1.ResolveTargetsRequest{Broadcast: true, EventType: "user.created"}, []string{a, cc, d, e}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.ProjectId = p.Id
				targets := must(c.ResolveTargets(ctx, testAdminKey, tt.req))(t).Targets
				var got []string
				for _, tg := range targets {
					got = append(got, tg.EndpointId)
					if tg.ProjectId != p.Id || len(tg.Secrets) != 1 || tg.Url == "" || tg.Signature.GetHeader() == "" {
						t.Errorf("incomplete target %v", tg)
					}
					if want, ok := tt.retry[tg.EndpointId]; ok && tg.RetryPolicy.GetStrategy() != want {
						t.Errorf("target %s retry policy %v, want %v", tg.EndpointId, tg.RetryPolicy, want)
					}
					if tg.EndpointId == d && tg.Status != registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED {
						t.Errorf("paused endpoint has status %v", tg.Status)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("targets %v, want %v", got, tt.want)
				}
			})
		}
		_, err := c.ResolveTargets(ctx, testAdminKey, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, EndpointId: "ep_nope", EventType: "a"})
		wantErr(t, err, connect.CodeNotFound, fmt.Sprintf(`endpoint "ep_nope" not found in project %q`, p.Id))
		_, err = c.ResolveTargets(ctx, testAdminKey, &registryv1.ResolveTargetsRequest{ProjectId: p.Id, EndpointId: a})
		wantErr(t, err, connect.CodeInvalidArgument, "event_type: must not be empty")
	})
}

func TestListEndpoints(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "list")
		var all, o1 []string
		for i := range 7 {
			owner := "o2"
			if i%2 == 0 {
				owner = "o1"
			}
			id := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id, OwnerId: owner}).Id
			all = append(all, id)
			if owner == "o1" {
				o1 = append(o1, id)
			}
		}
		// Another project's endpoints never show.
		other, otherKey := newProject(t, c, "other")
		newEndpoint(t, c, otherKey, &registryv1.CreateEndpointRequest{ProjectId: other.Id, OwnerId: "o1"})

		tests := []struct {
			name      string
			owner     string
			size      uint32
			want      []string
			wantPages int
		}{
			{"default page size", "", 0, all, 1},
			{"pages of three", "", 3, all, 3},
			{"exact pages", "", 7, all, 1},
			{"owner filter", "o1", 0, o1, 1},
			{"owner filter in pages", "o1", 3, o1, 2},
			{"unknown owner", "nobody", 3, nil, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got []string
				token, pages := "", 0
				for {
					resp := must(c.ListEndpoints(ctx, key, &registryv1.ListEndpointsRequest{
						ProjectId: p.Id, OwnerId: tt.owner, PageSize: tt.size, PageToken: token,
					}))(t)
					pages++
					for _, e := range resp.Endpoints {
						got = append(got, e.Id)
					}
					if token = resp.NextPageToken; token == "" {
						break
					}
					if pages > 10 {
						t.Fatal("pagination does not end")
					}
				}
				if !slices.Equal(got, tt.want) || pages != tt.wantPages {
					t.Fatalf("got %v in %d pages, want %v in %d", got, pages, tt.want, tt.wantPages)
				}
			})
		}
	})
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "subs")
		ep1 := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
		ep2 := newEndpoint(t, c, key, &registryv1.CreateEndpointRequest{ProjectId: p.Id})
		// Operators, dotted paths (keys FerretDB refuses in a stored
		// document), a number beyond 2^64 and the writer's spacing and key
		// order: all returned as written.
		body := `{"$or": [{"data.amount": {"$gte": 123456789012345678901234567890}}, {"type": "x"}],
  "100%": "literal %24 and %2E", "nested.list": [1.50, "a", null, true, {"k": "v"}]}`
		headers := `{"X-Tenant":"t1"}`
		created := must(c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{
			ProjectId: p.Id, EndpointId: ep1.Id, Name: "invoices",
			Filter:      &registryv1.Filter{EventTypes: []string{"invoice.*", "user.created"}, Body: body, Headers: headers},
			RetryPolicy: &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR},
		}))(t).Subscription
		if created.RetryPolicy.GetIntervalSeconds() != 10 || created.RetryPolicy.GetMaxAttempts() != 10 {
			t.Fatalf("retry override defaults = %v", created.RetryPolicy)
		}
		got := must(c.GetSubscription(ctx, key, &registryv1.GetSubscriptionRequest{ProjectId: p.Id, SubscriptionId: created.Id}))(t).Subscription
		if !proto.Equal(got, created) || got.Filter.Body != body || got.Filter.Headers != headers {
			t.Fatalf("GetSubscription = %v, want %v", got, created)
		}
		other := must(c.CreateSubscription(ctx, key, &registryv1.CreateSubscriptionRequest{ProjectId: p.Id, EndpointId: ep2.Id}))(t).Subscription
		if other.RetryPolicy != nil || other.Filter.GetBody() != "" {
			t.Fatalf("plain subscription = %v", other)
		}

		list := must(c.ListSubscriptions(ctx, key, &registryv1.ListSubscriptionsRequest{ProjectId: p.Id, EndpointId: ep2.Id}))(t).Subscriptions
		if len(list) != 1 || list[0].Id != other.Id {
			t.Fatalf("ListSubscriptions of %s = %v", ep2.Id, list)
		}
		all := must(c.ListSubscriptions(ctx, key, &registryv1.ListSubscriptionsRequest{ProjectId: p.Id, PageSize: 1}))(t)
		if len(all.Subscriptions) != 1 || all.Subscriptions[0].Id != created.Id || all.NextPageToken == "" {
			t.Fatalf("first page = %v", all)
		}

		upd := must(c.UpdateSubscription(ctx, key, &registryv1.UpdateSubscriptionRequest{
			ProjectId: p.Id, SubscriptionId: created.Id, Name: "all",
		}))(t).Subscription
		if upd.Name != "all" || upd.EndpointId != ep1.Id || len(upd.Filter.GetEventTypes()) != 0 || upd.Filter.GetBody() != "" || upd.RetryPolicy != nil {
			t.Fatalf("replaced subscription = %v", upd)
		}
		_, err := c.UpdateSubscription(ctx, key, &registryv1.UpdateSubscriptionRequest{
			ProjectId: p.Id, SubscriptionId: created.Id, Filter: &registryv1.Filter{EventTypes: []string{"*.created"}},
		})
		wantErr(t, err, connect.CodeInvalidArgument, `filter.event_types[0]: "*.created" is not an event type`)

		must(c.DeleteSubscription(ctx, key, &registryv1.DeleteSubscriptionRequest{ProjectId: p.Id, SubscriptionId: created.Id}))(t)
		_, err = c.GetSubscription(ctx, key, &registryv1.GetSubscriptionRequest{ProjectId: p.Id, SubscriptionId: created.Id})
		wantErr(t, err, connect.CodeNotFound, fmt.Sprintf("subscription %q not found in project %q", created.Id, p.Id))
	})
}

// TestAuthenticateKeyCache checks that AuthenticateKey answers from its
// cache, and that revocation and project deletion are not hidden by it.
func TestAuthenticateKeyCache(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	c := env.clients[0]
	ctx := context.Background()
	p, key := newProject(t, c, "cache")
	projectID, _, err := env.svc.AuthenticateKey(ctx, key)
	if err != nil || projectID != p.Id {
		t.Fatalf("AuthenticateKey = %q, %v", projectID, err)
	}
	// A key deleted behind the service's back still answers from the cache...
	if _, err := env.svc.store.apiKeys.DeleteMany(ctx, map[string]any{"project_id": p.Id}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.svc.AuthenticateKey(ctx, key); err != nil {
		t.Fatalf("AuthenticateKey did not answer from its cache: %v", err)
	}
	// ...until the project is deleted through the API.
	must(c.DeleteProject(ctx, testAdminKey, &registryv1.DeleteProjectRequest{ProjectId: p.Id}))(t)
	if _, _, err := env.svc.AuthenticateKey(ctx, key); err == nil {
		t.Fatal("a key of a deleted project still authenticates")
	}
}
