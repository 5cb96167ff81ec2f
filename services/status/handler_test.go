package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/testenv"
)

const (
	adminKey = "test-admin-key"
	keyA     = "key-of-project-a"
	keyB     = "key-of-project-b"
	projectA = "prj_a"
	projectB = "prj_b"
)

// keyTable authenticates the two test projects' keys.
type keyTable map[string]string

func (k keyTable) AuthenticateKey(_ context.Context, key string) (string, string, error) {
	p, ok := k[key]
	if !ok {
		return "", "", auth.ErrUnknownKey
	}
	return p, "key_" + p, nil
}

// statusClient is StatusService as every transport's client offers it.
type statusClient interface {
	GetDelivery(context.Context, *statusv1.GetDeliveryRequest) (*statusv1.GetDeliveryResponse, error)
	ListDeliveries(context.Context, *statusv1.ListDeliveriesRequest) (*statusv1.ListDeliveriesResponse, error)
	CountDeliveries(context.Context, *statusv1.CountDeliveriesRequest) (*statusv1.CountDeliveriesResponse, error)
	ListAttempts(context.Context, *statusv1.ListAttemptsRequest) (*statusv1.ListAttemptsResponse, error)
	RetryDelivery(context.Context, *statusv1.RetryDeliveryRequest) (*statusv1.RetryDeliveryResponse, error)
	ForceRetryDelivery(context.Context, *statusv1.ForceRetryDeliveryRequest) (*statusv1.ForceRetryDeliveryResponse, error)
	BatchRetryDeliveries(context.Context, *statusv1.BatchRetryDeliveriesRequest) (*statusv1.BatchRetryDeliveriesResponse, error)
}

func unary[Req, Res any](ctx context.Context, f func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	resp, err := f(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// connectClient adapts a Connect client (any of its protocols).
type connectClient struct {
	c statusv1connect.StatusServiceClient
}

func (c connectClient) GetDelivery(ctx context.Context, r *statusv1.GetDeliveryRequest) (*statusv1.GetDeliveryResponse, error) {
	return unary(ctx, c.c.GetDelivery, r)
}

func (c connectClient) ListDeliveries(ctx context.Context, r *statusv1.ListDeliveriesRequest) (*statusv1.ListDeliveriesResponse, error) {
	return unary(ctx, c.c.ListDeliveries, r)
}

func (c connectClient) CountDeliveries(ctx context.Context, r *statusv1.CountDeliveriesRequest) (*statusv1.CountDeliveriesResponse, error) {
	return unary(ctx, c.c.CountDeliveries, r)
}

func (c connectClient) ListAttempts(ctx context.Context, r *statusv1.ListAttemptsRequest) (*statusv1.ListAttemptsResponse, error) {
	return unary(ctx, c.c.ListAttempts, r)
}

func (c connectClient) RetryDelivery(ctx context.Context, r *statusv1.RetryDeliveryRequest) (*statusv1.RetryDeliveryResponse, error) {
	return unary(ctx, c.c.RetryDelivery, r)
}

func (c connectClient) ForceRetryDelivery(ctx context.Context, r *statusv1.ForceRetryDeliveryRequest) (*statusv1.ForceRetryDeliveryResponse, error) {
	return unary(ctx, c.c.ForceRetryDelivery, r)
}

func (c connectClient) BatchRetryDeliveries(ctx context.Context, r *statusv1.BatchRetryDeliveriesRequest) (*statusv1.BatchRetryDeliveriesResponse, error) {
	return unary(ctx, c.c.BatchRetryDeliveries, r)
}

// grpcClient adapts a google.golang.org/grpc client, sending the key as
// metadata.
type grpcClient struct {
	c   statusv1.StatusServiceClient
	key string
}

func (g grpcClient) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.key)
}

func (g grpcClient) GetDelivery(ctx context.Context, r *statusv1.GetDeliveryRequest) (*statusv1.GetDeliveryResponse, error) {
	return g.c.GetDelivery(g.ctx(ctx), r)
}

func (g grpcClient) ListDeliveries(ctx context.Context, r *statusv1.ListDeliveriesRequest) (*statusv1.ListDeliveriesResponse, error) {
	return g.c.ListDeliveries(g.ctx(ctx), r)
}

func (g grpcClient) CountDeliveries(ctx context.Context, r *statusv1.CountDeliveriesRequest) (*statusv1.CountDeliveriesResponse, error) {
	return g.c.CountDeliveries(g.ctx(ctx), r)
}

func (g grpcClient) ListAttempts(ctx context.Context, r *statusv1.ListAttemptsRequest) (*statusv1.ListAttemptsResponse, error) {
	return g.c.ListAttempts(g.ctx(ctx), r)
}

func (g grpcClient) RetryDelivery(ctx context.Context, r *statusv1.RetryDeliveryRequest) (*statusv1.RetryDeliveryResponse, error) {
	return g.c.RetryDelivery(g.ctx(ctx), r)
}

func (g grpcClient) ForceRetryDelivery(ctx context.Context, r *statusv1.ForceRetryDeliveryRequest) (*statusv1.ForceRetryDeliveryResponse, error) {
	return g.c.ForceRetryDelivery(g.ctx(ctx), r)
}

func (g grpcClient) BatchRetryDeliveries(ctx context.Context, r *statusv1.BatchRetryDeliveriesRequest) (*statusv1.BatchRetryDeliveriesResponse, error) {
	return g.c.BatchRetryDeliveries(g.ctx(ctx), r)
}

// codeOf returns the Connect code of an error from any of the clients.
func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	if st, ok := grpcstatus.FromError(err); ok {
		return connect.Code(st.Code())
	}
	return connect.CodeUnknown
}

// messageOf returns the message of an error from any of the clients.
func messageOf(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	if st, ok := grpcstatus.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// transport makes a client that calls the test server with a key.
type transport struct {
	name string
	dial func(key string) statusClient
}

// serve mounts the service as the process does, serves it, and returns a
// client maker for each protocol.
func serve(t *testing.T, s *Service) []transport {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	mux := http.NewServeMux()
	names := s.Register(mux, connect.WithInterceptors(
		apierr.NewInterceptor(logger),
		auth.NewKeys(adminKey, keyTable{keyA: projectA, keyB: projectB}).Interceptor(),
	))
	if !slices.Equal(names, []string{"hookmesh.status.v1.StatusService"}) {
		t.Fatalf("Register returned %v", names)
	}
	srv := testenv.Server(t, mux)
	conn, err := grpc.NewClient(srv.Listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	viaConnect := func(hc connect.HTTPClient, opts ...connect.ClientOption) func(string) statusClient {
		return func(key string) statusClient {
			opts := append(slices.Clone(opts), connect.WithInterceptors(auth.BearerInterceptor(key)))
			return connectClient{statusv1connect.NewStatusServiceClient(hc, srv.URL, opts...)}
		}
	}
	return []transport{
		{"connect", viaConnect(srv.Client())},
		{"grpc-web", viaConnect(srv.Client(), connect.WithGRPCWeb())},
		{"connect-grpc", viaConnect(testenv.H2CClient(), connect.WithGRPC())},
		{"grpc-go", func(key string) statusClient {
			return grpcClient{c: statusv1.NewStatusServiceClient(conn), key: key}
		}},
	}
}

// fixture is project A's deliveries as the tests expect them.
type fixture struct {
	s          *Service
	transports []transport
	base       time.Time
	all        []*statusv1.Delivery // project A, newest first
	withTries  string               // a project A delivery with 3 attempts
	ofB        string               // project B's delivery
}

// seed applies deliveries for two events of project A over three endpoints
// with every status, and one delivery of project B.
func seed(t *testing.T, kind string) *fixture {
	t.Helper()
	s := testService(t, kind)
	ctx := context.Background()
	f := &fixture{s: s, base: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	var changes []*busv1.StateChange
	finals := []statusv1.DeliveryStatus{scheduled, processing, success, retry, failed, discarded, success, success, failed}
	for i, final := range finals {
		ev := i / 3 // three deliveries an event, sharing create_time
		d := delivery{
			id: ids.New("dlv"), project: projectA, event: fmt.Sprintf("evt_%d", ev), endpoint: fmt.Sprintf("ep_%d", i%3),
			eventType: []string{"invoice.paid", "invoice.failed"}[ev%2], created: f.base.Add(time.Duration(ev) * time.Minute),
		}
		changes = append(changes, d.change(scheduled, 1))
		switch final {
		case processing:
			changes = append(changes, d.change(processing, 1))
		case success, retry, failed, discarded:
			changes = append(changes, d.change(final, 1))
		}
		if i == 8 {
			// Three attempts, the last one failed for good; applied newest
			// first to check that attempts are listed in order anyway.
			changes = append(changes, d.change(failed, 3), d.change(retry, 2), d.change(retry, 1))
			f.withTries = d.id
		}
	}
	b := delivery{id: ids.New("dlv"), project: projectB, event: "evt_b", endpoint: "ep_b", eventType: "invoice.paid", created: f.base}
	changes = append(changes, b.change(success, 1))
	f.ofB = b.id
	if err := s.Apply(ctx, changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	docs, err := s.store.listDeliveries(ctx, &deliveryQuery{projectID: projectA, limit: 1000})
	if err != nil || len(docs) != len(finals) {
		t.Fatalf("seeded %d deliveries (%v), want %d", len(docs), err, len(finals))
	}
	for i := range docs {
		f.all = append(f.all, docs[i].proto())
	}
	f.transports = serve(t, s)
	return f
}

// where returns the ids of project A's deliveries that match, newest first.
func (f *fixture) where(match func(*statusv1.Delivery) bool) []string {
	var out []string
	for _, d := range f.all {
		if match(d) {
			out = append(out, d.Id)
		}
	}
	return out
}

func idsOf(ds []*statusv1.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Id
	}
	return out
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		f := seed(t, kind)
		ctx := context.Background()
		for _, tr := range f.transports {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				a, b, admin := tr.dial(keyA), tr.dial(keyB), tr.dial(adminKey)

				t.Run("GetDelivery", func(t *testing.T) {
					want := f.all[0]
					for _, c := range []statusClient{a, admin} {
						got, err := c.GetDelivery(ctx, &statusv1.GetDeliveryRequest{ProjectId: projectA, DeliveryId: want.Id})
						if err != nil {
							t.Fatalf("GetDelivery: %v", err)
						}
						if d := got.Delivery; d.Id != want.Id || d.Status != want.Status || d.EventId != want.EventId ||
							!d.CreateTime.AsTime().Equal(want.CreateTime.AsTime()) || d.Attempts != want.Attempts {
							t.Errorf("GetDelivery = %v, want %v", d, want)
						}
					}
				})

				t.Run("other project", func(t *testing.T) {
					// Project B's key asking in its own project for A's delivery.
					_, err := b.GetDelivery(ctx, &statusv1.GetDeliveryRequest{ProjectId: projectB, DeliveryId: f.all[0].Id})
					wantMsg := fmt.Sprintf("delivery %q not found in project %q", f.all[0].Id, projectB)
					if codeOf(err) != connect.CodeNotFound || messageOf(err) != wantMsg {
						t.Errorf("GetDelivery of another project's delivery: %v, want NotFound %q", err, wantMsg)
					}
					_, err = b.ListAttempts(ctx, &statusv1.ListAttemptsRequest{ProjectId: projectB, DeliveryId: f.withTries})
					if codeOf(err) != connect.CodeNotFound {
						t.Errorf("ListAttempts of another project's delivery: %v, want NotFound", err)
					}
					// Project A's key asking inside project B.
					_, err = a.GetDelivery(ctx, &statusv1.GetDeliveryRequest{ProjectId: projectB, DeliveryId: f.ofB})
					if codeOf(err) != connect.CodeNotFound {
						t.Errorf("GetDelivery in a project of another key: %v, want NotFound", err)
					}
					res, err := a.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: projectB})
					if codeOf(err) != connect.CodeNotFound {
						t.Errorf("ListDeliveries in a project of another key: %v %v, want NotFound", res, err)
					}
					_, err = a.CountDeliveries(ctx, &statusv1.CountDeliveriesRequest{ProjectId: projectB})
					if codeOf(err) != connect.CodeNotFound {
						t.Errorf("CountDeliveries in a project of another key: %v, want NotFound", err)
					}
					// Project B sees only its own delivery.
					got, err := b.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: projectB})
					if err != nil || !slices.Equal(idsOf(got.GetDeliveries()), []string{f.ofB}) {
						t.Errorf("ListDeliveries of project B = %v, %v; want only %s", idsOf(got.GetDeliveries()), err, f.ofB)
					}
				})

				t.Run("authentication", func(t *testing.T) {
					_, err := tr.dial("no-such-key").GetDelivery(ctx, &statusv1.GetDeliveryRequest{ProjectId: projectA, DeliveryId: f.all[0].Id})
					if codeOf(err) != connect.CodeUnauthenticated {
						t.Errorf("unknown key: %v, want Unauthenticated", err)
					}
				})

				t.Run("ListAttempts", func(t *testing.T) {
					got, err := a.ListAttempts(ctx, &statusv1.ListAttemptsRequest{ProjectId: projectA, DeliveryId: f.withTries})
					if err != nil {
						t.Fatalf("ListAttempts: %v", err)
					}
					var nums []uint32
					for _, at := range got.Attempts {
						nums = append(nums, at.Attempt)
						if at.DeliveryId != f.withTries || at.StatusCode != http.StatusServiceUnavailable || at.StartTime == nil || at.ResponseHeaders["X.Dotted"] == "" {
							t.Errorf("attempt = %v", at)
						}
					}
					if !slices.Equal(nums, []uint32{1, 2, 3}) {
						t.Errorf("attempts = %v, want 1, 2, 3", nums)
					}
					_, err = a.ListAttempts(ctx, &statusv1.ListAttemptsRequest{ProjectId: projectA, DeliveryId: "dlv_missing"})
					if codeOf(err) != connect.CodeNotFound || !strings.Contains(messageOf(err), `"dlv_missing"`) {
						t.Errorf("ListAttempts of a missing delivery: %v, want NotFound naming it", err)
					}
					// A delivery with no attempt yet has an empty list.
					none := f.where(func(d *statusv1.Delivery) bool { return d.Status == scheduled })[0]
					got, err = a.ListAttempts(ctx, &statusv1.ListAttemptsRequest{ProjectId: projectA, DeliveryId: none})
					if err != nil || len(got.Attempts) != 0 {
						t.Errorf("ListAttempts of a scheduled delivery = %v, %v; want none", got, err)
					}
				})

				t.Run("ListDeliveries filters", func(t *testing.T) {
					start, end := f.base.Add(time.Minute), f.base.Add(2*time.Minute)
					tests := []struct {
						name  string
						req   *statusv1.ListDeliveriesRequest
						match func(*statusv1.Delivery) bool
					}{
						{"all", &statusv1.ListDeliveriesRequest{}, func(*statusv1.Delivery) bool { return true }},
						{"event", &statusv1.ListDeliveriesRequest{EventId: "evt_1"},
							func(d *statusv1.Delivery) bool { return d.EventId == "evt_1" }},
						{"endpoint", &statusv1.ListDeliveriesRequest{EndpointId: "ep_2"},
							func(d *statusv1.Delivery) bool { return d.EndpointId == "ep_2" }},
						{"event type", &statusv1.ListDeliveriesRequest{EventType: "invoice.failed"},
							func(d *statusv1.Delivery) bool { return d.EventType == "invoice.failed" }},
						{"one status", &statusv1.ListDeliveriesRequest{Statuses: []statusv1.DeliveryStatus{success}},
							func(d *statusv1.Delivery) bool { return d.Status == success }},
						{"statuses", &statusv1.ListDeliveriesRequest{Statuses: []statusv1.DeliveryStatus{failed, discarded, failed}},
							func(d *statusv1.Delivery) bool { return d.Status == failed || d.Status == discarded }},
						{"time range", &statusv1.ListDeliveriesRequest{StartTime: timestamppb.New(start), EndTime: timestamppb.New(end)},
							func(d *statusv1.Delivery) bool {
								ct := d.CreateTime.AsTime()
								return !ct.Before(start) && ct.Before(end)
							}},
						{"combined", &statusv1.ListDeliveriesRequest{EndpointId: "ep_2", Statuses: []statusv1.DeliveryStatus{failed}, StartTime: timestamppb.New(start)},
							func(d *statusv1.Delivery) bool {
								return d.EndpointId == "ep_2" && d.Status == failed && !d.CreateTime.AsTime().Before(start)
							}},
						{"nothing", &statusv1.ListDeliveriesRequest{EventId: "evt_none"}, func(*statusv1.Delivery) bool { return false }},
					}
					for _, tt := range tests {
						tt.req.ProjectId = projectA
						got, err := a.ListDeliveries(ctx, tt.req)
						if err != nil {
							t.Errorf("%s: %v", tt.name, err)
							continue
						}
						want := f.where(tt.match)
						if tt.name != "nothing" && len(want) == 0 {
							t.Fatalf("%s: the fixture has no matching delivery", tt.name)
						}
						if !slices.Equal(idsOf(got.Deliveries), want) || got.NextPageToken != "" {
							t.Errorf("%s: ListDeliveries = %v (next %q), want %v", tt.name, idsOf(got.Deliveries), got.NextPageToken, want)
						}
					}
				})

				t.Run("bad input", func(t *testing.T) {
					page, err := a.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: projectA, PageSize: 2})
					if err != nil || page.NextPageToken == "" {
						t.Fatalf("first page: %v, %v", page, err)
					}
					tests := []struct {
						name  string
						req   *statusv1.ListDeliveriesRequest
						field string
					}{
						{"no project", &statusv1.ListDeliveriesRequest{}, "project_id"},
						{"page too large", &statusv1.ListDeliveriesRequest{ProjectId: projectA, PageSize: 501}, "page_size"},
						{"garbage token", &statusv1.ListDeliveriesRequest{ProjectId: projectA, PageToken: "not a token!"}, "page_token"},
						{"truncated token", &statusv1.ListDeliveriesRequest{ProjectId: projectA, PageToken: page.NextPageToken[:10]}, "page_token"},
						{"token of other filters", &statusv1.ListDeliveriesRequest{ProjectId: projectA, EventId: "evt_1", PageToken: page.NextPageToken}, "page_token"},
						{"unspecified status", &statusv1.ListDeliveriesRequest{ProjectId: projectA, Statuses: []statusv1.DeliveryStatus{success, 0}}, "statuses"},
						{"unknown status", &statusv1.ListDeliveriesRequest{ProjectId: projectA, Statuses: []statusv1.DeliveryStatus{99}}, "statuses"},
						{"end before start", &statusv1.ListDeliveriesRequest{ProjectId: projectA,
							StartTime: timestamppb.New(f.base), EndTime: timestamppb.New(f.base.Add(-time.Second))}, "end_time"},
						{"invalid time", &statusv1.ListDeliveriesRequest{ProjectId: projectA, StartTime: &timestamppb.Timestamp{Nanos: -1}}, "start_time"},
					}
					for _, tt := range tests {
						_, err := a.ListDeliveries(ctx, tt.req)
						if codeOf(err) != connect.CodeInvalidArgument || !strings.HasPrefix(messageOf(err), tt.field+": ") {
							t.Errorf("%s: %v, want InvalidArgument naming %s", tt.name, err, tt.field)
						}
					}
					if _, err := a.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: projectA, PageSize: 500}); err != nil {
						t.Errorf("page_size 500: %v", err)
					}
					_, err = a.GetDelivery(ctx, &statusv1.GetDeliveryRequest{ProjectId: projectA})
					if codeOf(err) != connect.CodeInvalidArgument || !strings.HasPrefix(messageOf(err), "delivery_id: ") {
						t.Errorf("GetDelivery without delivery_id: %v, want InvalidArgument naming delivery_id", err)
					}
				})

				t.Run("CountDeliveries", func(t *testing.T) {
					tests := []struct {
						req   *statusv1.CountDeliveriesRequest
						match func(*statusv1.Delivery) bool
					}{
						{&statusv1.CountDeliveriesRequest{}, func(*statusv1.Delivery) bool { return true }},
						{&statusv1.CountDeliveriesRequest{EventId: "evt_2"}, func(d *statusv1.Delivery) bool { return d.EventId == "evt_2" }},
						{&statusv1.CountDeliveriesRequest{EndpointId: "ep_1"}, func(d *statusv1.Delivery) bool { return d.EndpointId == "ep_1" }},
						{&statusv1.CountDeliveriesRequest{EventId: "evt_2", EndpointId: "ep_0"},
							func(d *statusv1.Delivery) bool { return d.EventId == "evt_2" && d.EndpointId == "ep_0" }},
					}
					for _, tt := range tests {
						tt.req.ProjectId = projectA
						got, err := a.CountDeliveries(ctx, tt.req)
						if err != nil {
							t.Fatalf("CountDeliveries(%v): %v", tt.req, err)
						}
						want := map[statusv1.DeliveryStatus]uint64{}
						var total uint64
						for _, d := range f.all {
							if tt.match(d) {
								want[d.Status]++
								total++
							}
						}
						gotMap := map[statusv1.DeliveryStatus]uint64{}
						var order []statusv1.DeliveryStatus
						for _, c := range got.Counts {
							if c.Count > 0 {
								gotMap[c.Status] = c.Count
							}
							order = append(order, c.Status)
						}
						if fmt.Sprint(gotMap) != fmt.Sprint(want) || got.Total != total || !slices.Equal(order, allStatuses) {
							t.Errorf("CountDeliveries(%v) = %v total %d, want %v total %d, every status in order", tt.req, got.Counts, got.Total, want, total)
						}
					}
				})

				t.Run("manual retries", func(t *testing.T) {
					id := f.all[0].Id
					_, err1 := a.RetryDelivery(ctx, &statusv1.RetryDeliveryRequest{ProjectId: projectA, DeliveryId: id})
					_, err2 := a.ForceRetryDelivery(ctx, &statusv1.ForceRetryDeliveryRequest{ProjectId: projectA, DeliveryId: id})
					_, err3 := a.BatchRetryDeliveries(ctx, &statusv1.BatchRetryDeliveriesRequest{ProjectId: projectA, DryRun: true})
					for _, err := range []error{err1, err2, err3} {
						// This service was built without WithRetries; the
						// retries themselves are tested end to end in integration.
						if codeOf(err) != connect.CodeUnimplemented || !strings.Contains(messageOf(err), "not enabled") {
							t.Errorf("manual retry: %v, want Unimplemented", err)
						}
					}
					_, err := b.RetryDelivery(ctx, &statusv1.RetryDeliveryRequest{ProjectId: projectA, DeliveryId: id})
					if codeOf(err) != connect.CodeNotFound {
						t.Errorf("RetryDelivery in another key's project: %v, want NotFound", err)
					}
				})
			})
		}
	})
}

// TestListDeliveriesPagination pages through a project while deliveries
// keep arriving: no delivery may be repeated, and every one that existed
// at the start must be seen, in order.
func TestListDeliveriesPagination(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		ctx := context.Background()
		transports := serve(t, s)
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for ti, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				project := fmt.Sprintf("prj_page_%d", ti)
				c := tr.dial(adminKey)
				// 130 deliveries; every three share a create_time (an event's
				// deliveries), so the cursor must break ties by id.
				var initial []*busv1.StateChange
				var want []deliveryDoc
				for i := range 130 {
					d := delivery{id: ids.New("dlv"), project: project, event: fmt.Sprintf("evt_%d", i/3), endpoint: "ep_1",
						eventType: "t", created: base.Add(time.Duration(i/3) * time.Second)}
					initial = append(initial, d.change(scheduled, 1))
					want = append(want, deliveryDoc{ID: d.id, CreateTime: d.created})
				}
				if err := s.Apply(ctx, initial); err != nil {
					t.Fatal(err)
				}
				slices.SortFunc(want, func(x, y deliveryDoc) int {
					if c := y.CreateTime.Compare(x.CreateTime); c != 0 {
						return c
					}
					return cmp.Compare(y.ID, x.ID)
				})

				seen := map[string]bool{}
				var got []string
				var lastTime time.Time
				var lastID string
				token := ""
				for page := 0; ; page++ {
					if page > 50 {
						t.Fatal("more than 50 pages: the token does not move forward")
					}
					res, err := c.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: project, PageSize: 20, PageToken: token})
					if err != nil {
						t.Fatalf("page %d: %v", page, err)
					}
					for _, d := range res.Deliveries {
						if seen[d.Id] {
							t.Fatalf("page %d repeats %s", page, d.Id)
						}
						seen[d.Id] = true
						got = append(got, d.Id)
						ct := d.CreateTime.AsTime()
						if lastID != "" && (ct.After(lastTime) || (ct.Equal(lastTime) && d.Id >= lastID)) {
							t.Fatalf("page %d: %s (%v) sorts before the previous %s (%v)", page, d.Id, ct, lastID, lastTime)
						}
						lastTime, lastID = ct, d.Id
					}
					if res.NextPageToken == "" {
						break
					}
					if len(res.Deliveries) != 20 {
						t.Fatalf("page %d has %d deliveries and a next page", page, len(res.Deliveries))
					}
					token = res.NextPageToken
					// New deliveries arrive between pages: of newer events, and
					// one more of the event the page ended in (same create_time,
					// a greater id: it sorts before the cursor).
					var more []*busv1.StateChange
					for i := range 6 {
						d := delivery{id: ids.New("dlv"), project: project, event: "evt_new", endpoint: "ep_2", eventType: "t",
							created: time.Now().Add(time.Duration(i) * time.Millisecond)}
						more = append(more, d.change(scheduled, 1))
					}
					late := delivery{id: ids.New("dlv"), project: project, event: "evt_late", endpoint: "ep_3", eventType: "t", created: lastTime}
					more = append(more, late.change(scheduled, 1))
					if err := s.Apply(ctx, more); err != nil {
						t.Fatal(err)
					}
				}
				for _, w := range want {
					if !seen[w.ID] {
						t.Errorf("%s existed before the first page but was never listed", w.ID)
					}
				}
				// The deliveries that existed at the start came in order.
				var initialSeen []string
				for _, id := range got {
					if slices.ContainsFunc(want, func(w deliveryDoc) bool { return w.ID == id }) {
						initialSeen = append(initialSeen, id)
					}
				}
				wantIDs := make([]string, len(want))
				for i, w := range want {
					wantIDs[i] = w.ID
				}
				if !slices.Equal(initialSeen, wantIDs) {
					t.Errorf("initial deliveries listed out of order")
				}

				// The default page size is 50.
				res, err := c.ListDeliveries(ctx, &statusv1.ListDeliveriesRequest{ProjectId: project})
				if err != nil || len(res.Deliveries) != 50 || res.NextPageToken == "" {
					t.Errorf("default page: %d deliveries, next %q, %v; want 50 and a next page", len(res.GetDeliveries()), res.GetNextPageToken(), err)
				}
			})
		}
	})
}
