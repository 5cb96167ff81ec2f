package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1/ingestv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// eventType is the type of every event the benchmark sends.
const eventType = "bench.event"

// ingester sends one event and returns its id.
type ingester interface {
	send(ctx context.Context, seq int, data string) (eventID string, err error)
}

// newIngester returns the ingester of cfg.protocol for the project.
func newIngester(cfg *config, p *project) ingester {
	hc := ingestHTTPClient(cfg)
	if cfg.protocol == protocolREST {
		return &restIngester{cfg: cfg, p: p, hc: hc}
	}
	client := ingestv1connect.NewIngestServiceClient(hc, cfg.ingestURL, connect.WithInterceptors(auth.BearerInterceptor(p.key)))
	return &connectIngester{cfg: cfg, p: p, client: client}
}

// ingestHTTPClient keeps a connection per call in flight, so that calls do
// not wait for a connection or reconnect (Go keeps only 2 idle connections a
// host by default); or, with -http2, multiplexes them on h2c.
func ingestHTTPClient(cfg *config) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: cfg.concurrency,
		IdleConnTimeout:     90 * time.Second,
	}
	if cfg.http2 {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// endpointOf is the endpoint of a single-endpoint event: round-robin.
func (p *project) endpointOf(seq int) string { return p.endpointIDs[seq%len(p.endpointIDs)] }

// orderingKey is event seq's ordering key: key seq mod -ordering-keys, or
// none.
func orderingKey(cfg *config, seq int) string {
	if cfg.orderingKeys <= 0 {
		return ""
	}
	return "bench-key-" + strconv.Itoa(seq%cfg.orderingKeys)
}

func idempotencyKey(cfg *config, seq int) string {
	if !cfg.idempotencyKeys {
		return ""
	}
	return "bench-" + strconv.Itoa(seq)
}

// connectIngester calls IngestService with the Connect protocol and binary
// proto, through the generated client.
type connectIngester struct {
	cfg    *config
	p      *project
	client ingestv1connect.IngestServiceClient
}

func (c *connectIngester) send(ctx context.Context, seq int, data string) (string, error) {
	key, order := idempotencyKey(c.cfg, seq), orderingKey(c.cfg, seq)
	switch c.cfg.shape {
	case shapeFanout:
		resp, err := c.client.CreateFanoutEvent(ctx, connect.NewRequest(&ingestv1.CreateFanoutEventRequest{
			ProjectId: c.p.id, OwnerId: benchOwner, EventType: eventType, Data: data, IdempotencyKey: key, OrderingKey: order}))
		if err != nil {
			return "", err
		}
		return resp.Msg.GetEvent().GetId(), nil
	case shapeBroadcast:
		resp, err := c.client.CreateBroadcastEvent(ctx, connect.NewRequest(&ingestv1.CreateBroadcastEventRequest{
			ProjectId: c.p.id, EventType: eventType, Data: data, IdempotencyKey: key, OrderingKey: order}))
		if err != nil {
			return "", err
		}
		return resp.Msg.GetEvent().GetId(), nil
	default:
		resp, err := c.client.CreateEvent(ctx, connect.NewRequest(&ingestv1.CreateEventRequest{
			ProjectId: c.p.id, EndpointId: c.p.endpointOf(seq), EventType: eventType, Data: data, IdempotencyKey: key, OrderingKey: order}))
		if err != nil {
			return "", err
		}
		return resp.Msg.GetEvent().GetId(), nil
	}
}

// restIngester posts Convoy-style JSON to the REST API.
type restIngester struct {
	cfg *config
	p   *project
	hc  *http.Client
}

type restEvent struct {
	EndpointID     string          `json:"endpoint_id,omitempty"`
	OwnerID        string          `json:"owner_id,omitempty"`
	EventType      string          `json:"event_type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	OrderingKey    string          `json:"ordering_key,omitempty"`
}

func (r *restIngester) send(ctx context.Context, seq int, data string) (string, error) {
	url := r.cfg.ingestURL + "/api/v1/projects/" + r.p.id + "/events"
	ev := restEvent{EventType: eventType, Data: json.RawMessage(data), IdempotencyKey: idempotencyKey(r.cfg, seq), OrderingKey: orderingKey(r.cfg, seq)}
	switch r.cfg.shape {
	case shapeFanout:
		url += "/fanout"
		ev.OwnerID = benchOwner
	case shapeBroadcast:
		url += "/broadcast"
	default:
		ev.EndpointID = r.p.endpointOf(seq)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.p.key)
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(out)))
	}
	// The answer is Convoy's envelope, the event in data.
	var created struct {
		Data struct {
			UID string `json:"uid"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Data.UID == "" {
		return "", fmt.Errorf("POST %s: answer without an event id: %.200s", url, out)
	}
	return created.Data.UID, nil
}
