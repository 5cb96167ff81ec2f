package deliverer

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/signature"
	"github.com/hookmesh/hookmesh/internal/webhook"
)

// The handling of one delivery task, outcome by outcome: the endpoint is a
// real HTTP server (httptest), the registry and the broker are fakes, and
// every message published is decoded back.

var testTopology = mesh.NewTopology("test", 4)

// recorder is a Publisher that keeps every message; err, when set, fails
// every publish. onState sees each state change as it is published.
type recorder struct {
	mu      sync.Mutex
	msgs    []bus.Message
	err     error
	onState func(*busv1.StateChange)
}

func (p *recorder) Publish(_ context.Context, msgs []bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, msgs...)
	if p.onState != nil {
		for _, m := range msgs {
			if m.Type == mesh.TypeState {
				sc := &busv1.StateChange{}
				if proto.Unmarshal(m.Body, sc) == nil {
					p.onState(sc)
				}
			}
		}
	}
	return nil
}

func (p *recorder) messages() []bus.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

// registry is a Targets answering target (or err) and keeping the
// endpoints it was asked to disable.
type registry struct {
	mu         sync.Mutex
	target     *registryv1.Target
	err        error
	disableErr error
	gets       int
	disabled   []string
}

func (r *registry) GetTarget(_ context.Context, projectID, endpointID string) (*registryv1.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gets++
	if r.err != nil {
		return nil, r.err
	}
	if projectID != r.target.GetProjectId() || endpointID != r.target.GetEndpointId() {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such endpoint"))
	}
	return proto.CloneOf(r.target), nil
}

func (r *registry) DisableEndpoint(_ context.Context, projectID, endpointID, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disabled = append(r.disabled, projectID+"/"+endpointID+": "+reason)
	return r.disableErr
}

func (r *registry) calls() (gets int, disabled []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets, slices.Clone(r.disabled)
}

// clock is the deliverer's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTestDeliverer returns a deliverer over the fakes with a hand-moved
// clock. PROCESSING is not reported unless cfg asks for it sooner.
func newTestDeliverer(tb testing.TB, cfg Config, reg *registry) (*Deliverer, *recorder, *clock) {
	tb.Helper()
	if cfg.ProcessingAfter == 0 {
		cfg.ProcessingAfter = time.Hour
	}
	sender := webhook.NewSender(webhook.Config{})
	tb.Cleanup(sender.Close)
	pub := &recorder{}
	d, err := newDeliverer(cfg, testTopology, pub, reg, sender, noop.NewMeterProvider(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	clk := &clock{now: time.Now().Truncate(time.Second)}
	d.now = clk.Now
	return d, pub, clk
}

// endpoint is an HTTP server counting its requests.
type endpoint struct {
	*httptest.Server
	hits atomic.Int32
}

func newEndpoint(tb testing.TB, h http.HandlerFunc) *endpoint {
	tb.Helper()
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		h(w, r)
	}))
	tb.Cleanup(e.Close)
	return e
}

func answer(status int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}
}

var testSecret = signature.Secret("whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))

func testTarget(url string) *registryv1.Target {
	return &registryv1.Target{
		EndpointId: "ep_1", ProjectId: "prj_1", Url: url, Status: registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE,
		TimeoutSeconds: 5, Secrets: []*registryv1.Secret{{Value: []byte(testSecret)}},
	}
}

func testTask(attempt uint32) *busv1.DeliveryTask {
	return &busv1.DeliveryTask{
		DeliveryId: "dlv_1", EventId: "evt_1", ProjectId: "prj_1", EndpointId: "ep_1", EventType: "invoice.paid",
		Data: []byte(`{"amount":1500}`), Attempt: attempt, IdempotencyKey: "key-1",
		EventCreateTime: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
	}
}

// delivery wraps a task as the consumer hands it over; headers are the
// AMQP headers (a due time).
func delivery(tb testing.TB, task *busv1.DeliveryTask, headers amqp.Table) *bus.Delivery {
	tb.Helper()
	body, err := proto.Marshal(task)
	if err != nil {
		tb.Fatal(err)
	}
	return &bus.Delivery{Ctx: context.Background(), Delivery: amqp.Delivery{Body: body, Headers: headers}}
}

// published is what a deliverer sent, decoded.
type published struct {
	msg   bus.Message
	task  *busv1.DeliveryTask // a task put off through the delay queues
	due   time.Time           // its due time
	state *busv1.StateChange  // or a state change
}

func decode(tb testing.TB, msgs []bus.Message) []published {
	tb.Helper()
	var out []published
	for _, m := range msgs {
		p := published{msg: m}
		switch m.Type {
		case mesh.TypeTask:
			p.task = &busv1.DeliveryTask{}
			if err := proto.Unmarshal(m.Body, p.task); err != nil {
				tb.Fatal(err)
			}
			due, ok := mesh.Due(&bus.Delivery{Delivery: amqp.Delivery{Headers: m.Headers}})
			if !ok || m.Exchange != "" || !slices.ContainsFunc(testTopology.Delays, func(q mesh.DelayQueue) bool { return q.Name == m.Key }) {
				tb.Fatalf("task %s published to %q/%q with headers %v, not to a delay queue with its due time", p.task.GetDeliveryId(), m.Exchange, m.Key, m.Headers)
			}
			p.due = due
		case mesh.TypeState:
			p.state = &busv1.StateChange{}
			if err := proto.Unmarshal(m.Body, p.state); err != nil {
				tb.Fatal(err)
			}
			if m.Exchange != testTopology.StatusExchange {
				tb.Fatalf("state published to %q", m.Exchange)
			}
		default:
			tb.Fatalf("unexpected message type %q", m.Type)
		}
		out = append(out, p)
	}
	return out
}

// onlyState returns the one message published, a state change.
func onlyState(tb testing.TB, pub *recorder) *busv1.StateChange {
	tb.Helper()
	got := decode(tb, pub.messages())
	if len(got) != 1 || got[0].state == nil {
		tb.Fatalf("published %v, want one state change", got)
	}
	return got[0].state
}

// onlyPutOff returns the one message published, a task put off.
func onlyPutOff(tb testing.TB, pub *recorder) published {
	tb.Helper()
	got := decode(tb, pub.messages())
	if len(got) != 1 || got[0].task == nil {
		tb.Fatalf("published %v, want one task put off", got)
	}
	return got[0]
}

func TestHandleSuccess(t *testing.T) {
	t.Parallel()
	type request struct {
		header http.Header
		body   []byte
	}
	requests := make(chan request, 1)
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		requests <- request{r.Header.Clone(), body}
		w.Header().Set("X-Reply", "yes")
		io.WriteString(w, "thanks")
	})
	target := testTarget(ep.URL + "/hook")
	target.CustomHeaders = map[string]string{"X-Team": "billing", "X-Tenant": "from-endpoint"}
	reg := &registry{target: target}
	d, pub, clk := newTestDeliverer(t, Config{}, reg)
	task := testTask(2)
	task.CustomHeaders = map[string]string{"X-Tenant": "acme"}
	if err := d.handle(context.Background(), delivery(t, task, nil)); err != nil {
		t.Fatal(err)
	}

	req := <-requests
	if string(req.body) != `{"amount":1500}` {
		t.Errorf("body %q, want the event's data", req.body)
	}
	for name, want := range map[string]string{
		"X-Hookmesh-Event-Type": "invoice.paid", "X-Hookmesh-Event-Id": "evt_1", "X-Hookmesh-Delivery-Id": "dlv_1",
		"X-Hookmesh-Attempt": "2", "X-Hookmesh-Idempotency-Key": "key-1", "X-Team": "billing", "X-Tenant": "acme",
		signature.HeaderID: "dlv_1",
	} {
		if got := req.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if err := signature.VerifyStandard(testSecret, req.header, req.body, 0); err != nil {
		t.Errorf("the request is not signed with the endpoint's secret: %v", err)
	}

	sc := onlyState(t, pub)
	rec := sc.GetRecord()
	if sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS || sc.GetAttempt() != 2 || sc.GetDeliveryId() != "dlv_1" ||
		sc.GetEventId() != "evt_1" || sc.GetEndpointId() != "ep_1" || sc.GetProjectId() != "prj_1" || sc.GetEventType() != "invoice.paid" ||
		!proto.Equal(sc.GetEventCreateTime(), task.GetEventCreateTime()) || !sc.GetTime().AsTime().Equal(clk.Now()) || sc.GetNextAttemptTime() != nil {
		t.Fatalf("state %v, want SUCCESS of attempt 2 of the task's delivery", sc)
	}
	if rec.GetStatusCode() != 200 || rec.GetResponseBody() != "thanks" || rec.GetResponseHeaders()["X-Reply"] != "yes" || rec.GetError() != "" ||
		rec.GetUrl() != ep.URL+"/hook" || rec.GetDeliveryId() != "dlv_1" || rec.GetAttempt() != 2 || rec.GetRemoteIp() != "127.0.0.1" ||
		rec.GetRequestHeaders()[http.CanonicalHeaderKey(signature.HeaderSignature)] == "" {
		t.Fatalf("record %v, want the 200 exchange with the signature header", rec)
	}
	if _, disabled := reg.calls(); len(disabled) != 0 {
		t.Fatalf("disabled %v after a success", disabled)
	}
}

func TestHandleFailedAttempts(t *testing.T) {
	t.Parallel()
	linear := func(seconds, attempts uint32) *registryv1.RetryPolicy {
		return &registryv1.RetryPolicy{Strategy: registryv1.RetryStrategy_RETRY_STRATEGY_LINEAR, IntervalSeconds: seconds, MaxAttempts: attempts}
	}
	hang := func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body is
		// read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}
	for _, tc := range []struct {
		name         string
		handler      http.HandlerFunc // nil: nothing listens
		timeout      uint32
		attempt      uint32
		taskPolicy   *registryv1.RetryPolicy
		targetPolicy *registryv1.RetryPolicy
		// wantDelay is the wait before the next attempt (0: none, FAILED);
		// with wantMaxDelay, the bounds of a jittered wait.
		wantDelay, wantMaxDelay time.Duration
		wantTier                string
		wantCode                int32
		wantError               string
	}{
		{name: "500 is retried", handler: answer(500), attempt: 1, taskPolicy: linear(7, 3),
			wantDelay: 7 * time.Second, wantTier: "5s", wantCode: 500, wantError: "endpoint answered 500 Internal Server Error"},
		{name: "400 is retried too", handler: answer(400), attempt: 2, taskPolicy: linear(7, 3),
			wantDelay: 7 * time.Second, wantTier: "5s", wantCode: 400, wantError: "endpoint answered 400 Bad Request"},
		{name: "a redirect is not followed and is retried", handler: answer(302, "Location", "/elsewhere"), attempt: 1, taskPolicy: linear(7, 3),
			wantDelay: 7 * time.Second, wantTier: "5s", wantCode: 302, wantError: "endpoint answered 302 Found"},
		{name: "timeout is retried", handler: hang, timeout: 1, attempt: 1, taskPolicy: linear(7, 3),
			wantDelay: 7 * time.Second, wantTier: "5s", wantError: "timeout after 1s"},
		{name: "connection refused is retried", attempt: 1, taskPolicy: linear(40, 3),
			wantDelay: 40 * time.Second, wantTier: "30s", wantError: "connection refused"},
		{name: "503 waits its Retry-After", handler: answer(503, "Retry-After", "120"), attempt: 1, taskPolicy: linear(7, 3),
			wantDelay: 2 * time.Minute, wantTier: "2m", wantCode: 503, wantError: "endpoint answered 503 Service Unavailable"},
		{name: "429 waits its Retry-After", handler: answer(429, "Retry-After", "3"), attempt: 1, taskPolicy: linear(700, 3),
			wantDelay: 3 * time.Second, wantTier: "1s", wantCode: 429, wantError: "endpoint answered 429 Too Many Requests"},
		{name: "the last attempt fails", handler: answer(500), attempt: 3, taskPolicy: linear(7, 3),
			wantCode: 500, wantError: "endpoint answered 500 Internal Server Error"},
		{name: "the last attempt times out", handler: hang, timeout: 1, attempt: 3, taskPolicy: linear(7, 3),
			wantError: "timeout after 1s"},
		{name: "the subscription's policy over the project's", handler: answer(500), attempt: 2, taskPolicy: linear(7, 3), targetPolicy: linear(60, 2),
			wantDelay: 7 * time.Second, wantTier: "5s", wantCode: 500, wantError: "endpoint answered 500"},
		{name: "the project's policy without the subscription's", handler: answer(500), attempt: 2, targetPolicy: linear(60, 2),
			wantCode: 500, wantError: "endpoint answered 500"},
		{name: "the default policy retries attempt 9", handler: answer(500), attempt: 9,
			wantDelay: 2048 * time.Second, wantMaxDelay: 3072 * time.Second, wantCode: 500, wantError: "endpoint answered 500"},
		{name: "the default policy stops at 10", handler: answer(500), attempt: 10,
			wantCode: 500, wantError: "endpoint answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var url string
			if tc.handler != nil {
				url = newEndpoint(t, tc.handler).URL
			} else {
				closed := httptest.NewServer(http.NotFoundHandler())
				url = closed.URL
				closed.Close()
			}
			target := testTarget(url)
			target.RetryPolicy = tc.targetPolicy
			if tc.timeout > 0 {
				target.TimeoutSeconds = tc.timeout
			}
			reg := &registry{target: target}
			d, pub, clk := newTestDeliverer(t, Config{}, reg)
			task := testTask(tc.attempt)
			task.RetryPolicy = tc.taskPolicy
			if err := d.handle(context.Background(), delivery(t, task, nil)); err != nil {
				t.Fatal(err)
			}
			got := decode(t, pub.messages())
			sc := got[len(got)-1].state
			if sc == nil {
				t.Fatalf("published %v: the last is not a state change", got)
			}
			rec := sc.GetRecord()
			if rec.GetStatusCode() != tc.wantCode || !strings.Contains(rec.GetError(), tc.wantError) || rec.GetAttempt() != tc.attempt || rec.GetUrl() != url {
				t.Errorf("record %v, want status %d, error %q, attempt %d", rec, tc.wantCode, tc.wantError, tc.attempt)
			}
			if sc.GetAttempt() != tc.attempt {
				t.Errorf("state of attempt %d, want %d", sc.GetAttempt(), tc.attempt)
			}
			if tc.wantDelay == 0 {
				if len(got) != 1 || sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED || sc.GetNextAttemptTime() != nil {
					t.Fatalf("published %v, want FAILED alone", got)
				}
				return
			}
			// The next attempt is queued first, then RETRY reported.
			if len(got) != 2 || got[0].task == nil || sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY {
				t.Fatalf("published %v, want the next attempt then RETRY", got)
			}
			next := got[0]
			want := proto.CloneOf(task)
			want.Attempt = tc.attempt + 1
			if !proto.Equal(next.task, want) {
				t.Errorf("next task %v, want %v", next.task, want)
			}
			delay := next.due.Sub(clk.Now())
			if maxDelay := max(tc.wantMaxDelay, tc.wantDelay); delay < tc.wantDelay || delay > maxDelay {
				t.Errorf("next attempt due in %v, want %v..%v", delay, tc.wantDelay, maxDelay)
			}
			// The due header has milliseconds.
			if !sc.GetNextAttemptTime().AsTime().Truncate(time.Millisecond).Equal(next.due) {
				t.Errorf("RETRY says next attempt at %v, the task is due at %v", sc.GetNextAttemptTime().AsTime(), next.due)
			}
			if tc.wantTier != "" && next.msg.Key != testTopology.Prefix+".delay."+tc.wantTier {
				t.Errorf("next attempt waits in %s, want the %s tier", next.msg.Key, tc.wantTier)
			}
		})
	}
}

func TestHandleGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		disableErr error
	}{
		{"disabled", nil},
		// The delivery still ends: a later delivery's 410 tries again.
		{"disabling fails", connect.NewError(connect.CodeUnavailable, errors.New("registry away"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := newEndpoint(t, answer(http.StatusGone))
			reg := &registry{target: testTarget(ep.URL), disableErr: tc.disableErr}
			d, pub, _ := newTestDeliverer(t, Config{}, reg)
			// Attempts remain, but none is made.
			if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
				t.Fatal(err)
			}
			sc := onlyState(t, pub)
			if sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED || sc.GetRecord().GetStatusCode() != 410 ||
				sc.GetRecord().GetError() != "endpoint answered 410 Gone: it was disabled and the delivery ends here" {
				t.Fatalf("state %v, want FAILED saying the endpoint was disabled", sc)
			}
			if _, disabled := reg.calls(); !slices.Equal(disabled, []string{"prj_1/ep_1: 410 Gone from " + ep.URL}) {
				t.Fatalf("disabled %q, want ep_1 for its 410", disabled)
			}
		})
	}
}

func TestHandleDisablesAfterFailuresInARow(t *testing.T) {
	t.Parallel()
	status := atomic.Int32{}
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	target := testTarget(ep.URL)
	target.DisableAfterFailures = 2
	reg := &registry{target: target}
	d, pub, _ := newTestDeliverer(t, Config{Breaker: BreakerConfig{FailureRatio: -1}}, reg)
	for i, st := range []int{500, 200, 500, 500} {
		status.Store(int32(st))
		if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
			t.Fatal(err)
		}
		_, disabled := reg.calls()
		// A success in between starts the run over: only the 4th attempt
		// is the second failure in a row.
		if want := i == 3; (len(disabled) == 1) != want || len(disabled) > 1 {
			t.Fatalf("after attempt %d (%d): disabled %q", i+1, st, disabled)
		}
	}
	_, disabled := reg.calls()
	if disabled[0] != "prj_1/ep_1: 2 failed attempts in a row" {
		t.Fatalf("disabled with %q", disabled[0])
	}
	// The failed delivery itself is still retried.
	got := decode(t, pub.messages())
	if last := got[len(got)-1].state; last.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY {
		t.Fatalf("the attempt that disabled the endpoint ended %s, want RETRY", last.GetStatus())
	}
}

func TestHandleWithoutSending(t *testing.T) {
	t.Parallel()
	brokenKey := "whsk_AAAA"
	past := timestamppb.New(time.Now().Add(-time.Hour))
	for _, tc := range []struct {
		name   string
		err    error
		modify func(*registryv1.Target)
		// wantStatus is the state reported; UNSPECIFIED when handle fails.
		wantStatus statusv1.DeliveryStatus
		wantError  string
		malformed  bool
	}{
		{name: "deleted endpoint", err: connect.NewError(connect.CodeNotFound, errors.New(`endpoint "ep_1" not found`)),
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, wantError: "endpoint was deleted: nothing was sent"},
		{name: "paused endpoint", modify: func(t *registryv1.Target) { t.Status = registryv1.EndpointStatus_ENDPOINT_STATUS_PAUSED },
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, wantError: "endpoint is not active: nothing was sent"},
		{name: "disabled endpoint", modify: func(t *registryv1.Target) { t.Status = registryv1.EndpointStatus_ENDPOINT_STATUS_DISABLED },
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, wantError: "endpoint is not active: nothing was sent"},
		{name: "no secret", modify: func(t *registryv1.Target) { t.Secrets = nil },
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, wantError: cannotSign},
		{name: "only a broken Ed25519 key", modify: func(t *registryv1.Target) { t.Secrets = []*registryv1.Secret{{Value: []byte(brokenKey)}} },
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, wantError: cannotSign},
		{name: "only an expired secret", modify: func(t *registryv1.Target) { t.Secrets[0].ExpireTime = past },
			wantStatus: statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, wantError: cannotSign},
		{name: "ids refused by the registry", err: connect.NewError(connect.CodeInvalidArgument, errors.New("bad id")), malformed: true},
		{name: "registry away", err: connect.NewError(connect.CodeUnavailable, errors.New("connection refused"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := newEndpoint(t, answer(200))
			target := testTarget(ep.URL)
			if tc.modify != nil {
				tc.modify(target)
			}
			reg := &registry{target: target, err: tc.err}
			d, pub, clk := newTestDeliverer(t, Config{}, reg)
			err := d.handle(context.Background(), delivery(t, testTask(1), nil))
			if ep.hits.Load() != 0 {
				t.Fatalf("the endpoint received %d requests", ep.hits.Load())
			}
			if tc.wantStatus == statusv1.DeliveryStatus_DELIVERY_STATUS_UNSPECIFIED {
				if err == nil || errors.Is(err, bus.ErrMalformed) != tc.malformed {
					t.Fatalf("handle = %v, want an error (malformed: %v)", err, tc.malformed)
				}
				if !tc.malformed && !errors.Is(err, tc.err) {
					t.Errorf("error %v does not wrap the registry's", err)
				}
				if msgs := pub.messages(); len(msgs) != 0 {
					t.Fatalf("published %d messages", len(msgs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sc := onlyState(t, pub)
			rec := sc.GetRecord()
			if sc.GetStatus() != tc.wantStatus || rec.GetError() != tc.wantError || sc.GetAttempt() != 1 ||
				rec.GetDeliveryId() != "dlv_1" || !rec.GetStartTime().AsTime().Equal(clk.Now()) {
				t.Fatalf("state %v, want %s with %q", sc, tc.wantStatus, tc.wantError)
			}
			if tc.err == nil && rec.GetUrl() != ep.URL {
				t.Errorf("record url %q, want the endpoint's", rec.GetUrl())
			}
		})
	}
}

func TestHandleParksMalformedTasks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"not a protobuf", []byte{0xff, 0xff, 0xff}},
		{"no delivery id", mustMarshal(t, &busv1.DeliveryTask{EndpointId: "ep_1", Attempt: 1})},
		{"no endpoint", mustMarshal(t, &busv1.DeliveryTask{DeliveryId: "dlv_1", Attempt: 1})},
		{"no attempt", mustMarshal(t, &busv1.DeliveryTask{DeliveryId: "dlv_1", EndpointId: "ep_1"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := &registry{target: testTarget("http://127.0.0.1:1")}
			d, pub, _ := newTestDeliverer(t, Config{}, reg)
			err := d.handle(context.Background(), &bus.Delivery{Ctx: context.Background(), Delivery: amqp.Delivery{Body: tc.body}})
			if !errors.Is(err, bus.ErrMalformed) {
				t.Fatalf("handle = %v, want ErrMalformed", err)
			}
			if gets, _ := reg.calls(); gets != 0 || len(pub.messages()) != 0 {
				t.Fatal("a malformed task was handled")
			}
		})
	}
}

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestHandleOpenCircuitPutsOff(t *testing.T) {
	t.Parallel()
	status := atomic.Int32{}
	status.Store(500)
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	reg := &registry{target: testTarget(ep.URL)}
	d, pub, clk := newTestDeliverer(t, Config{Breaker: BreakerConfig{FailureRatio: 1, MinRequests: 1, Cooldown: 30 * time.Second}}, reg)

	// One failure opens the circuit.
	if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
		t.Fatal(err)
	}
	before := len(pub.messages())
	// Another delivery to the endpoint waits out the cooldown without an
	// attempt: same attempt number, no request, no state change.
	other := testTask(4)
	other.DeliveryId = "dlv_2"
	if err := d.handle(context.Background(), delivery(t, other, nil)); err != nil {
		t.Fatal(err)
	}
	got := decode(t, pub.messages()[before:])
	if len(got) != 1 || got[0].task == nil {
		t.Fatalf("published %v while the circuit is open, want the task put off", got)
	}
	if !proto.Equal(got[0].task, other) || !got[0].due.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("put off %v due %v, want the task unchanged, due at the end of the cooldown", got[0].task, got[0].due.Sub(clk.Now()))
	}
	if ep.hits.Load() != 1 {
		t.Fatalf("the endpoint received %d requests, want only the first", ep.hits.Load())
	}

	// After the cooldown a probe goes; its success closes the circuit.
	clk.Add(30 * time.Second)
	status.Store(200)
	before = len(pub.messages())
	if err := d.handle(context.Background(), delivery(t, other, nil)); err != nil {
		t.Fatal(err)
	}
	if sc := onlyStateOf(t, pub.messages()[before:]); sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS || sc.GetAttempt() != 4 {
		t.Fatalf("probe ended %v, want SUCCESS of attempt 4", sc)
	}
	before = len(pub.messages())
	if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
		t.Fatal(err)
	}
	if sc := onlyStateOf(t, pub.messages()[before:]); sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
		t.Fatalf("after the probe: %v, want SUCCESS", sc)
	}
	if ep.hits.Load() != 3 {
		t.Fatalf("the endpoint received %d requests, want 3", ep.hits.Load())
	}
}

func onlyStateOf(tb testing.TB, msgs []bus.Message) *busv1.StateChange {
	tb.Helper()
	got := decode(tb, msgs)
	if len(got) != 1 || got[0].state == nil {
		tb.Fatalf("published %v, want one state change", got)
	}
	return got[0].state
}

func TestHandleRateLimitPutsOff(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, answer(200))
	target := testTarget(ep.URL)
	target.RateLimit = &registryv1.RateLimit{Count: 1, DurationSeconds: 60}
	reg := &registry{target: target}
	d, pub, clk := newTestDeliverer(t, Config{}, reg)
	if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
		t.Fatal(err)
	}
	if sc := onlyState(t, pub); sc.GetStatus() != statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
		t.Fatalf("first delivery: %v, want SUCCESS", sc)
	}
	// The second within the minute waits for the window, through the delay
	// queues: not an attempt.
	other := testTask(2)
	other.DeliveryId = "dlv_2"
	if err := d.handle(context.Background(), delivery(t, other, nil)); err != nil {
		t.Fatal(err)
	}
	got := decode(t, pub.messages()[1:])
	if len(got) != 1 || got[0].task == nil || !proto.Equal(got[0].task, other) || !got[0].due.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("published %v, want the task put off unchanged for a minute", got)
	}
	if ep.hits.Load() != 1 {
		t.Fatalf("the endpoint received %d requests within its limit of 1", ep.hits.Load())
	}
}

func TestHandleEarlyRetryGoesOn(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, answer(200))
	reg := &registry{target: testTarget(ep.URL)}
	d, pub, _ := newTestDeliverer(t, Config{}, reg)
	// Back from a delay tier an hour early: on to the next tier, untouched.
	due := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	task := testTask(3)
	if err := d.handle(context.Background(), delivery(t, task, amqp.Table{mesh.DueHeader: due.UnixMilli()})); err != nil {
		t.Fatal(err)
	}
	put := onlyPutOff(t, pub)
	if !proto.Equal(put.task, task) || !put.due.Equal(due) {
		t.Fatalf("put off %v due %v, want the task due %v", put.task, put.due, due)
	}
	if gets, _ := reg.calls(); gets != 0 || ep.hits.Load() != 0 {
		t.Fatalf("an early task was looked up (%d) or sent (%d)", gets, ep.hits.Load())
	}
	// Once due, it is sent.
	if err := d.handle(context.Background(), delivery(t, task, amqp.Table{mesh.DueHeader: time.Now().Add(-time.Second).UnixMilli()})); err != nil {
		t.Fatal(err)
	}
	if ep.hits.Load() != 1 {
		t.Fatal("a task due was not sent")
	}
}

func TestHandleReportsProcessingForASlowRequest(t *testing.T) {
	t.Parallel()
	processing := make(chan struct{})
	var once sync.Once
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		// Answers only once PROCESSING was published.
		select {
		case <-processing:
		case <-time.After(30 * time.Second):
		}
		w.WriteHeader(http.StatusOK)
	})
	reg := &registry{target: testTarget(ep.URL)}
	d, pub, _ := newTestDeliverer(t, Config{ProcessingAfter: time.Millisecond}, reg)
	pub.onState = func(sc *busv1.StateChange) {
		if sc.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING {
			once.Do(func() { close(processing) })
		}
	}
	if err := d.handle(context.Background(), delivery(t, testTask(1), nil)); err != nil {
		t.Fatal(err)
	}
	got := decode(t, pub.messages())
	var statuses []statusv1.DeliveryStatus
	for _, p := range got {
		statuses = append(statuses, p.state.GetStatus())
	}
	want := []statusv1.DeliveryStatus{statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS}
	if !slices.Equal(statuses, want) {
		t.Fatalf("states %v, want %v", statuses, want)
	}
	if got[0].state.GetRecord() != nil || got[0].state.GetAttempt() != 1 {
		t.Fatalf("PROCESSING %v, want attempt 1 without a record", got[0].state)
	}
}

func TestHandleUnconfirmedOutcomeIsAnError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		attempt uint32
		want    string
	}{
		{"success not confirmed", 200, 1, "report DELIVERY_STATUS_SUCCESS of delivery dlv_1"},
		{"retry not queued", 500, 1, "schedule attempt 2 of delivery dlv_1"},
		{"failure not confirmed", 500, 10, "report DELIVERY_STATUS_FAILED of delivery dlv_1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := newEndpoint(t, answer(tc.status))
			d, pub, _ := newTestDeliverer(t, Config{}, &registry{target: testTarget(ep.URL)})
			unconfirmed := errors.New("broker did not confirm")
			pub.err = unconfirmed
			// An error that is not malformed: the task is handled again.
			err := d.handle(context.Background(), delivery(t, testTask(tc.attempt), nil))
			if !errors.Is(err, unconfirmed) || errors.Is(err, bus.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("handle = %v, want %q wrapping the broker's error", err, tc.want)
			}
		})
	}
}
