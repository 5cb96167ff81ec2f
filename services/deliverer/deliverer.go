// Package deliverer sends delivery tasks: it signs each event and POSTs it
// to the endpoint with the endpoint's timeout and headers, and reports
// PROCESSING (for a request that takes a while) and then the outcome
// (SUCCESS, RETRY or FAILED; DISCARDED, with no request, for an endpoint
// that is not active) to the status service. It
// acks a task only once its outcome is confirmed by the broker, so a crash
// loses nothing: the task is delivered again, with the same webhook-id.
package deliverer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/bus"
	"github.com/hookmesh/hookmesh/internal/mesh"
	"github.com/hookmesh/hookmesh/internal/metaevent"
	"github.com/hookmesh/hookmesh/internal/signature"
	"github.com/hookmesh/hookmesh/internal/webhook"
)

// Targets returns what is needed to send to an endpoint (the registry's
// cached client).
type Targets interface {
	GetTarget(ctx context.Context, projectID, endpointID string) (*registryv1.Target, error)
	// DisableEndpoint marks an endpoint DISABLED.
	DisableEndpoint(ctx context.Context, projectID, endpointID, reason string) error
}

// Publisher publishes messages and returns once the broker confirmed them
// all (a *bus.Publisher).
type Publisher interface {
	Publish(ctx context.Context, msgs []bus.Message) error
}

// Deliverer consumes delivery tasks.
type Deliverer struct {
	cfg     Config
	conn    *bus.Conn
	topo    mesh.Topology
	pub     Publisher
	targets Targets
	sender  *webhook.Sender
	metrics *metrics
	limits  *rateLimits
	streaks *streaks
	circuit *breakers
	logger  *slog.Logger
	now     func() time.Time
}

// New returns a deliverer consuming from conn the deliver queue of topo;
// mp receives its metrics.
func New(cfg Config, conn *bus.Conn, topo mesh.Topology, pub Publisher, targets Targets, sender *webhook.Sender, mp metric.MeterProvider, logger *slog.Logger) (*Deliverer, error) {
	d, err := newDeliverer(cfg, topo, pub, targets, sender, mp, logger)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	return d, nil
}

// newDeliverer returns a deliverer that builds its messages for topo; only
// Run needs the connection.
func newDeliverer(cfg Config, topo mesh.Topology, pub Publisher, targets Targets, sender *webhook.Sender, mp metric.MeterProvider, logger *slog.Logger) (*Deliverer, error) {
	cfg.defaults()
	m, err := newMetrics(mp)
	if err != nil {
		return nil, fmt.Errorf("deliverer metrics: %w", err)
	}
	return &Deliverer{cfg: cfg, topo: topo, pub: pub, targets: targets, sender: sender, metrics: m, limits: newRateLimits(), streaks: newStreaks(),
		circuit: newBreakers(cfg.Breaker), logger: logger, now: time.Now}, nil
}

// Run delivers tasks until ctx ends; the requests in flight finish first,
// and Run returns once every goroutine it started has.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Deferred after the wait, so it runs first: the replica watch stops
	// once consuming has ended, however it ended.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() { d.watchReplicas(ctx) })
	return d.conn.Consume(ctx, d.topo.DeliverQueue, bus.ConsumeOptions{Workers: d.cfg.Concurrency}, d.handle)
}

// handle delivers one task: it checks the endpoint, its circuit and rate
// limit, sends the request and reports the outcome.
func (d *Deliverer) handle(ctx context.Context, m *bus.Delivery) error {
	task, err := decodeTask(m)
	if err != nil {
		return err
	}
	// A retry that came back from a delay tier before it is due goes on to
	// the next tier.
	if due, ok := mesh.Due(m); ok && time.Until(due) > 100*time.Millisecond {
		return d.putOff(ctx, task, due)
	}
	target, ready, err := d.loadTarget(ctx, task)
	if !ready {
		return err
	}
	probe, admitted, err := d.admit(ctx, task, target)
	if !admitted {
		return err
	}

	// PROCESSING is published when the request is still on its way after
	// ProcessingAfter: most answers come sooner, and their outcome says
	// all (sparing the broker and the status service a message per
	// delivery). The outcome supersedes it at the status service whichever
	// arrives first.
	// A timer, not a goroutine waiting on one: most requests end before it
	// fires, and then nothing more runs.
	processing := make(chan error, 1)
	timer := time.AfterFunc(d.cfg.ProcessingAfter, func() {
		processing <- d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_PROCESSING, nil)
	})

	res, sent := d.send(ctx, task, target)
	if timer.Stop() {
		// It will not fire: no PROCESSING to wait for.
		processing <- nil
	}
	err = d.outcome(ctx, task, target, res, sent, probe)
	if perr := <-processing; err == nil && perr != nil {
		d.logger.WarnContext(ctx, "processing state not confirmed", "delivery_id", task.GetDeliveryId(), "err", perr)
	}
	return err
}

// decodeTask decodes a delivery task and refuses one that lacks what every
// attempt needs.
func decodeTask(m *bus.Delivery) (*busv1.DeliveryTask, error) {
	var task busv1.DeliveryTask
	if err := bus.Decode(m, &task); err != nil {
		return nil, err
	}
	if task.GetDeliveryId() == "" || task.GetEndpointId() == "" || task.GetAttempt() == 0 {
		return nil, fmt.Errorf("%w: task without delivery id, endpoint or attempt", bus.ErrMalformed)
	}
	return &task, nil
}

// loadTarget asks the registry for the task's endpoint. ready is false when
// the task ends here, without a request (a deleted, inactive or unsignable
// endpoint, or a registry error); err is then what handle returns.
func (d *Deliverer) loadTarget(ctx context.Context, task *busv1.DeliveryTask) (target *registryv1.Target, ready bool, err error) {
	target, err = d.targets.GetTarget(ctx, task.GetProjectId(), task.GetEndpointId())
	switch {
	case connect.CodeOf(err) == connect.CodeNotFound:
		// The endpoint or its project was deleted: the task ends here,
		// visibly, instead of being tried again.
		d.logger.WarnContext(ctx, "delivery discarded: its endpoint or project no longer exists", "delivery_id", task.GetDeliveryId(),
			"project_id", task.GetProjectId(), "endpoint_id", task.GetEndpointId(), "err", err)
		return nil, false, d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, &statusv1.Attempt{
			Error: "endpoint was deleted: nothing was sent", StartTime: timestamppb.New(d.now())})
	case connect.CodeOf(err) == connect.CodeInvalidArgument:
		// The registry refuses the task's ids: asking again cannot help.
		return nil, false, fmt.Errorf("%w: load endpoint %s: %w", bus.ErrMalformed, task.GetEndpointId(), err)
	case err != nil:
		return nil, false, fmt.Errorf("load endpoint %s: %w", task.GetEndpointId(), err)
	case target.GetStatus() != registryv1.EndpointStatus_ENDPOINT_STATUS_ACTIVE:
		return nil, false, d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED, &statusv1.Attempt{
			Error: "endpoint is not active: nothing was sent", StartTime: timestamppb.New(d.now()), Url: target.GetUrl()})
	case len(liveSecrets(target, d.now())) == 0:
		// The registry could not open the endpoint's secret (it runs with
		// another secret key than the one that sealed it): the webhook
		// cannot be signed, and trying again will not change that.
		d.logger.ErrorContext(ctx, "delivery failed: the endpoint's secret cannot be opened, so the webhook cannot be signed",
			"delivery_id", task.GetDeliveryId(), "project_id", task.GetProjectId(), "endpoint_id", task.GetEndpointId())
		rec := &statusv1.Attempt{Error: cannotSign, StartTime: timestamppb.New(d.now()), Url: target.GetUrl()}
		return nil, false, d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, rec,
			d.deliveryMeta(ctx, nil, metaevent.DeliveryFailed, task, target, rec)...)
	}
	return target, true, nil
}

// admit applies the endpoint's circuit and then its rate limit. admitted
// is false when the task was put off instead (err is then the put off's
// result); probe says the attempt is the circuit's probe.
func (d *Deliverer) admit(ctx context.Context, task *busv1.DeliveryTask, target *registryv1.Target) (probe, admitted bool, err error) {
	// An endpoint whose circuit is open is left alone for a while: the
	// task waits in the delay queues, and that is not an attempt.
	endpointID := task.GetEndpointId()
	wait, probe, ok := d.circuit.allow(endpointID, d.now(), timeoutOf(target)+probeGrace)
	if !ok {
		return false, false, d.putOff(ctx, task, d.now().Add(wait))
	}
	// An endpoint's rate limit: a short wait is waited here; a longer one
	// puts the task off through the delay queues, so that workers are not
	// held. Neither counts as an attempt.
	if wait, booked := d.limits.reserve(target, d.now(), maxRateWait); wait > 0 {
		if !booked {
			if probe {
				d.circuit.release(endpointID)
			}
			return false, false, d.putOff(ctx, task, d.now().Add(wait))
		}
		time.Sleep(wait)
	}
	return probe, true, nil
}

// outcome records an attempt's result in the endpoint's circuit and
// reports it, with the meta events it causes.
func (d *Deliverer) outcome(ctx context.Context, task *busv1.DeliveryTask, target *registryv1.Target, res webhook.Result, sent http.Header, probe bool) error {
	// Meta events go out in the same confirmed batch as the outcome they
	// are about, before the task is acked: a crash in between sends them
	// again with the attempt, never loses them.
	endpointID := task.GetEndpointId()
	var meta []bus.Message
	if st, changed := d.circuit.record(endpointID, d.now(), breaksCircuit(res), probe); changed {
		d.metrics.circuit(ctx, st)
		d.logger.WarnContext(ctx, "endpoint circuit "+st.String(), "endpoint_id", endpointID, "url", target.GetUrl(),
			"project_id", task.GetProjectId())
		meta = d.circuitMeta(ctx, meta, task, target, st)
	}
	rec := record(task, target, sent, res)
	if !res.Success() {
		return d.failed(ctx, task, target, res, rec, meta)
	}
	d.streaks.reset(task.GetEndpointId())
	d.metrics.attempt(ctx, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, res.Latency)
	if task.GetAttempt() > 1 {
		meta = d.deliveryMeta(ctx, meta, metaevent.DeliveryRecovered, task, target, rec)
	}
	return d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, rec, meta...)
}

// putOff sends the task through the delay queues to come back at due.
func (d *Deliverer) putOff(ctx context.Context, task *busv1.DeliveryTask, due time.Time) error {
	pctx, cancel := context.WithTimeout(ctx, d.cfg.PublishTimeout)
	defer cancel()
	return d.pub.Publish(pctx, []bus.Message{d.topo.DelayedTaskMessage(task, due, d.now())})
}

// breaksCircuit says whether an attempt's outcome counts against the
// endpoint's health: no answer at all, 429 or a server error. Other
// answers, even failing ones, come from a live endpoint.
func breaksCircuit(res webhook.Result) bool {
	return res.Err != nil || res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500
}

// probeGrace is added to an endpoint's timeout to bound a probe.
const probeGrace = 5 * time.Second

// timeoutOf is the endpoint's request timeout.
func timeoutOf(t *registryv1.Target) time.Duration {
	if timeout := time.Duration(t.GetTimeoutSeconds()) * time.Second; timeout > 0 {
		return timeout
	}
	return 30 * time.Second
}

// maxRateWait is the longest a worker waits for an endpoint's rate limit
// before putting the task off instead.
const maxRateWait = 250 * time.Millisecond

// failed handles an attempt that did not succeed: while the policy (the
// subscription's override, else the project's) allows more attempts, the
// next one is scheduled through the delay queues and the delivery reported
// RETRY; after the last one, FAILED. Every failure counts: an answer other
// than 2xx (redirects are not followed), a timeout, a refused connection or
// an unknown host. A 429 or 503 with Retry-After waits what it asks, within
// bounds.
func (d *Deliverer) failed(ctx context.Context, task *busv1.DeliveryTask, t *registryv1.Target, res webhook.Result, rec *statusv1.Attempt, meta []bus.Message) error {
	policy := task.GetRetryPolicy()
	if policy == nil {
		policy = t.GetRetryPolicy()
	}
	if f := t.GetMetaEvents(); f != nil && task.GetAttempt() == f.GetAttemptFailingAfter() {
		meta = d.deliveryMeta(ctx, meta, metaevent.DeliveryAttemptFailing, task, t, rec)
	}
	if res.StatusCode == http.StatusGone && t.GetMeta() {
		// The meta endpoint is never disabled: its project turns meta
		// events off in their settings. The delivery ends here all the same.
		d.metrics.attempt(ctx, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, res.Latency)
		rec.Error = "meta endpoint answered 410 Gone: the delivery ends here"
		return d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, rec)
	}
	if res.StatusCode == http.StatusGone {
		// The endpoint says it is gone for good: no more attempts, and no
		// more deliveries until someone activates it again.
		if err := d.targets.DisableEndpoint(ctx, task.GetProjectId(), task.GetEndpointId(), "410 Gone from "+t.GetUrl()); err != nil {
			d.logger.WarnContext(ctx, "endpoint answered 410 but could not be disabled", "endpoint_id", task.GetEndpointId(), "err", err)
		}
		d.metrics.attempt(ctx, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, res.Latency)
		rec.Error = "endpoint answered 410 Gone: it was disabled and the delivery ends here"
		meta = d.deliveryMeta(ctx, meta, metaevent.DeliveryFailed, task, t, rec)
		return d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, rec, meta...)
	}
	// A project may disable an endpoint after a run of failed attempts;
	// its deliveries are then DISCARDED until it is activated.
	if limit := t.GetDisableAfterFailures(); limit > 0 && d.streaks.fail(task.GetEndpointId()) >= limit {
		d.streaks.reset(task.GetEndpointId())
		if err := d.targets.DisableEndpoint(ctx, task.GetProjectId(), task.GetEndpointId(), fmt.Sprintf("%d failed attempts in a row", limit)); err != nil {
			d.logger.WarnContext(ctx, "endpoint failed too often but could not be disabled", "endpoint_id", task.GetEndpointId(), "err", err)
		}
	}
	if task.GetAttempt() >= maxAttempts(policy) {
		d.metrics.attempt(ctx, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, res.Latency)
		meta = d.deliveryMeta(ctx, meta, metaevent.DeliveryFailed, task, t, rec)
		return d.report(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, rec, meta...)
	}
	now := d.now()
	delay := backoff(policy, task.GetAttempt(), randomJitter)
	if ra, ok := retryAfter(res.StatusCode, res.Header, now); ok {
		delay = ra
	}
	due := now.Add(delay)
	next := proto.CloneOf(task)
	next.Attempt++
	// The next attempt is queued before RETRY is reported: a crash in
	// between leaves a retry without its report, which the next attempt's
	// own reports supersede, never a report without its retry.
	if err := d.putOff(ctx, next, due); err != nil {
		return fmt.Errorf("schedule attempt %d of delivery %s: %w", next.GetAttempt(), task.GetDeliveryId(), err)
	}
	d.metrics.attempt(ctx, statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, res.Latency)
	return d.reportAt(ctx, task, statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, rec, due, meta...)
}

// send signs and POSTs the task.
func (d *Deliverer) send(ctx context.Context, task *busv1.DeliveryTask, t *registryv1.Target) (webhook.Result, http.Header) {
	h := http.Header{}
	for k, v := range t.GetCustomHeaders() {
		h.Set(k, v)
	}
	for k, v := range task.GetCustomHeaders() {
		h.Set(k, v)
	}
	h.Set("X-Hookmesh-Event-Type", task.GetEventType())
	h.Set("X-Hookmesh-Event-Id", task.GetEventId())
	h.Set("X-Hookmesh-Delivery-Id", task.GetDeliveryId())
	h.Set("X-Hookmesh-Attempt", strconv.FormatUint(uint64(task.GetAttempt()), 10))
	if k := task.GetIdempotencyKey(); k != "" {
		h.Set("X-Hookmesh-Idempotency-Key", k)
	}
	now := d.now()
	secrets := liveSecrets(t, now)
	signature.Sign(h, signature.Options{Header: t.GetSignature().GetHeader(), Advanced: t.GetSignature().GetAdvanced()},
		task.GetDeliveryId(), now, task.GetData(), secrets)
	return d.sender.Send(ctx, webhook.Request{URL: t.GetUrl(), Body: task.GetData(), Header: h, Timeout: timeoutOf(t)}), h
}

// cannotSign is the error of a delivery whose endpoint has no secret the
// registry can open.
const cannotSign = "cannot sign the webhook: the registry cannot open the endpoint's secret with its secret key (HOOKMESH_SECRET_KEY); " +
	"nothing was sent. Restore the key, or give the endpoint a new secret (RotateEndpointSecret, or `hookmesh reset-secrets`), then retry the delivery"

// liveSecrets are the target's secrets that have not expired at now. An
// Ed25519 private key that does not parse (the registry refuses those) is
// left out, as it could not sign: with nothing else, nothing is sent.
func liveSecrets(t *registryv1.Target, now time.Time) []signature.Secret {
	secrets := make([]signature.Secret, 0, len(t.GetSecrets()))
	for _, s := range t.GetSecrets() {
		if s.GetExpireTime() != nil && s.GetExpireTime().AsTime().Before(now) {
			continue
		}
		v := signature.Secret(s.GetValue())
		if v.IsEd25519() && v.Validate() != nil {
			continue
		}
		secrets = append(secrets, v)
	}
	return secrets
}

// record describes an attempt for the status service. Signature headers are
// kept (they are not secret); nothing else of the endpoint's secrets is.
func record(task *busv1.DeliveryTask, t *registryv1.Target, sent http.Header, res webhook.Result) *statusv1.Attempt {
	a := &statusv1.Attempt{
		DeliveryId:      task.GetDeliveryId(),
		Attempt:         task.GetAttempt(),
		StatusCode:      int32(res.StatusCode),
		LatencyMs:       uint32(res.Latency.Milliseconds()),
		RequestHeaders:  flatten(sent),
		ResponseHeaders: flatten(res.Header),
		ResponseBody:    strings.ToValidUTF8(string(res.Body), string(utf8.RuneError)),
		RemoteIp:        res.RemoteIP,
		StartTime:       timestamppb.New(res.Start),
		Url:             t.GetUrl(),
	}
	switch {
	case res.Err != nil:
		a.Error = res.Err.Error()
	case !res.Success():
		a.Error = fmt.Sprintf("endpoint answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
	return a
}

func flatten(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// report publishes a state change, with the meta events about it, and
// waits for their confirms.
func (d *Deliverer) report(ctx context.Context, task *busv1.DeliveryTask, st statusv1.DeliveryStatus, rec *statusv1.Attempt, meta ...bus.Message) error {
	return d.reportAt(ctx, task, st, rec, time.Time{}, meta...)
}

// reportAt is report with the time of the next attempt, for RETRY.
func (d *Deliverer) reportAt(ctx context.Context, task *busv1.DeliveryTask, st statusv1.DeliveryStatus, rec *statusv1.Attempt, next time.Time, meta ...bus.Message) error {
	if rec != nil {
		rec.DeliveryId = task.GetDeliveryId()
		rec.Attempt = task.GetAttempt()
	}
	change := &busv1.StateChange{
		DeliveryId:      task.GetDeliveryId(),
		ProjectId:       task.GetProjectId(),
		EventId:         task.GetEventId(),
		EndpointId:      task.GetEndpointId(),
		EventType:       task.GetEventType(),
		Status:          st,
		Attempt:         task.GetAttempt(),
		Time:            timestamppb.New(d.now()),
		EventCreateTime: task.GetEventCreateTime(),
		Record:          rec,
		// A delivery in a line reports to the line's status partition,
		// where its outcome lets the next one go.
		OrderingKey: task.GetOrderingKey(),
		OrderingSeq: task.GetOrderingSeq(),
	}
	if !next.IsZero() {
		change.NextAttemptTime = timestamppb.New(next)
	}
	msg := d.topo.StateMessage(change)
	pctx, cancel := context.WithTimeout(ctx, d.cfg.PublishTimeout)
	defer cancel()
	d.metrics.outcome(ctx, st)
	if err := d.pub.Publish(pctx, append([]bus.Message{msg}, meta...)); err != nil {
		return fmt.Errorf("report %s of delivery %s: %w", st, task.GetDeliveryId(), err)
	}
	return nil
}
