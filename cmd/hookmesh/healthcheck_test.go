package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheckAsksReadyz(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			_, _ = io.WriteString(w, "ok")
		case r.URL.Path == "/readyz" && ready.Load():
			_, _ = io.WriteString(w, "ready")
		case r.URL.Path == "/readyz":
			http.Error(w, "rabbitmq: amqp connection is down", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	// Listening on every address: the check goes to loopback.
	addr := strings.Replace(strings.TrimPrefix(srv.URL, "http://"), "127.0.0.1", "0.0.0.0", 1)
	getenv := env(map[string]string{"HOOKMESH_HTTP_ADDR": addr})

	err := healthcheck(context.Background(), nil, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "amqp connection is down") {
		t.Fatalf("not ready: err %v, want the 503 and its reason", err)
	}
	if err := healthcheck(context.Background(), []string{"/healthz"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("live: %v", err)
	}
	ready.Store(true)
	if err := healthcheck(context.Background(), nil, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if err := healthcheck(context.Background(), []string{"/metrics"}, getenv, io.Discard, io.Discard); err == nil {
		t.Fatal("healthcheck /metrics accepted")
	}
}

func TestTargetFlag(t *testing.T) {
	t.Parallel()
	cfg, _, err := parse([]string{"-target=router,deliverer"}, env(nil), io.Discard)
	if err != nil || strings.Join(cfg.Targets, ",") != "router,deliverer" {
		t.Fatalf("targets %v, err %v", cfg.Targets, err)
	}
}
