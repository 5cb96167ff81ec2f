package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	ingestv1 "github.com/hookmesh/hookmesh/gen/hookmesh/ingest/v1"
	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// TestHealthReadinessAndReflection checks /healthz, /readyz, gRPC health
// checking and server reflection, with a plain gRPC client.
func TestHealthReadinessAndReflection(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	sent, err := s.clients(key).ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
		ProjectId: projectID, EndpointId: ep.GetId(), EventType: "metered", Data: `{}`}))
	if err != nil {
		t.Fatal(err)
	}
	// The deliverer counts an outcome before it reports it.
	waitDelivery(t, s.clients(key), projectID, sent.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	for path, wants := range map[string][]string{
		"/healthz": {"ok"},
		"/readyz":  {"ready"},
		"/metrics": {
			`hookmesh_deliveries_total{otel_scope_name="github.com/hookmesh/hookmesh/services/deliverer"`,
			`status="success"`,
			`hookmesh_attempt_duration_seconds_bucket{`,
			`hookmesh_queue_messages{`,
			`queue="` + s.cfg.AMQPPrefix + `.deliver"`,
		},
	} {
		resp, err := http.Get(s.ingestURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(s.ingestURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, svc := range []string{"", "hookmesh.ingest.v1.IngestService", "hookmesh.registry.v1.RegistryService", "hookmesh.status.v1.StatusService"} {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, resp, err)
		}
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "hookmesh.ingest.v1.IngestService") {
		t.Fatalf("reflection lists %v", names)
	}
}

// TestShutdownFinishesDeliveriesInFlight stops hookmesh while a webhook is
// on its way: the request completes, its outcome is kept, and a restarted
// hookmesh shows the delivery as SUCCESS with nothing sent twice.
func TestShutdownFinishesDeliveriesInFlight(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			first := startStack(t, m, stackOptions{})
			recv := newReceiver(t)
			inFlight := make(chan struct{}, 1)
			release := make(chan struct{})
			recv.respond = func(*http.Request) int {
				inFlight <- struct{}{}
				<-release
				return http.StatusOK
			}
			projectID, key := first.project(t, nil)
			ep := first.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL, TimeoutSeconds: 30})
			resp, err := first.clients(key).ingest.CreateEvent(context.Background(), connect.NewRequest(&ingestv1.CreateEventRequest{
				ProjectId: projectID, EndpointId: ep.GetId(), EventType: "slow", Data: `{"slow":true}`}))
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-inFlight:
			case <-time.After(30 * time.Second):
				t.Fatal("the webhook never started")
			}
			stopped := make(chan struct{})
			go func() { first.stop(); close(stopped) }()
			select {
			case <-stopped:
				t.Fatal("shutdown did not wait for the delivery in flight")
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			select {
			case <-stopped:
			case <-time.After(30 * time.Second):
				t.Fatal("shutdown did not finish")
			}

			second := startStack(t, m, stackOptions{after: first})
			waitDelivery(t, second.clients(key), projectID, resp.Msg.GetEvent().GetId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
			if n := len(recv.requests()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1", n)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestShutdownIsLogged checks that a process says when it starts to stop,
// why, and when it has stopped.
func TestShutdownIsLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := startStack(t, modeAll, stackOptions{logs: &logs})
	s.stop()
	var stopping, stopped bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Msg, Level, Reason, Took string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec.Msg {
		case "hookmesh stopping":
			stopping = rec.Reason == context.Canceled.Error()
		case "hookmesh stopped":
			stopped = stopping && rec.Level == "INFO" && rec.Took != ""
		}
	}
	if !stopping || !stopped {
		t.Fatalf("no stopping line with its reason followed by a stopped line:\n%s", logs.String())
	}
}
