package webhook_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookmesh/hookmesh/internal/webhook"
)

// newSender returns a Sender closed when the test ends.
func newSender(tb testing.TB, cfg webhook.Config, opts ...webhook.Option) *webhook.Sender {
	tb.Helper()
	s := webhook.NewSender(cfg, opts...)
	tb.Cleanup(s.Close)
	return s
}

// newServer starts an httptest server closed when the test ends, counting the
// connections it accepts.
func newServer(tb testing.TB, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, &conns
}

func TestSendStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		success bool
	}{
		{"200", http.StatusOK, `{"ok":true}`, true},
		{"204 without body", http.StatusNoContent, "", true},
		{"500 with body", http.StatusInternalServerError, "database is down", false},
		{"410", http.StatusGone, "endpoint removed", false},
		{"100-level never reaches us, 299 is still success", 299, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Reply", "yes")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: srv.URL, Body: []byte(`{}`), Timeout: 5 * time.Second})
			if res.Err != nil {
				t.Fatalf("Err = %v", res.Err)
			}
			if res.StatusCode != tt.status || string(res.Body) != tt.body || res.Truncated {
				t.Errorf("got %d %q truncated=%v, want %d %q", res.StatusCode, res.Body, res.Truncated, tt.status, tt.body)
			}
			if res.Success() != tt.success {
				t.Errorf("Success() = %v, want %v", res.Success(), tt.success)
			}
			if res.Header.Get("X-Reply") != "yes" {
				t.Errorf("response header missing: %v", res.Header)
			}
			if res.RemoteIP != "127.0.0.1" {
				t.Errorf("RemoteIP = %q, want 127.0.0.1", res.RemoteIP)
			}
			if res.Start.IsZero() || res.Latency <= 0 {
				t.Errorf("Start = %v, Latency = %v", res.Start, res.Latency)
			}
		})
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: srv.URL + "/hook", Body: []byte(`{}`)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.StatusCode != http.StatusFound || res.Success() {
		t.Errorf("StatusCode = %d, Success = %v, want 302 and false", res.StatusCode, res.Success())
	}
	if res.Header.Get("Location") != "/elsewhere" {
		t.Errorf("Location = %q", res.Header.Get("Location"))
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
	}{
		{"no response", func(w http.ResponseWriter, r *http.Request) {
			sleep(r, 10*time.Second)
		}, 0},
		{"body too slow", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
			sleep(r, 10*time.Second)
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, tt.handler)
			res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: srv.URL, Body: []byte(`{}`), Timeout: timeout})
			if res.Err == nil || !strings.Contains(res.Err.Error(), "timeout after 300ms") {
				t.Fatalf("Err = %v, want timeout after 300ms", res.Err)
			}
			if !errors.Is(res.Err, context.DeadlineExceeded) {
				t.Errorf("Err %v does not wrap context.DeadlineExceeded", res.Err)
			}
			if res.StatusCode != tt.status || res.Success() {
				t.Errorf("StatusCode = %d, Success = %v, want %d and false", res.StatusCode, res.Success(), tt.status)
			}
			// Generous upper bound: -race on a busy machine is slow, but
			// the 10s the server waits must not be reached.
			if res.Latency < timeout-50*time.Millisecond || res.Latency > timeout+3*time.Second {
				t.Errorf("Latency = %v, want about %v", res.Latency, timeout)
			}
		})
	}
}

func TestSendCallerCanceled(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { sleep(r, 10*time.Second) })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	res := newSender(t, webhook.Config{}).Send(ctx, webhook.Request{URL: srv.URL, Timeout: 5 * time.Second})
	if res.Err == nil || res.Err.Error() != "canceled" {
		t.Errorf("Err = %v, want canceled", res.Err)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: "http://" + addr + "/hook", Timeout: 5 * time.Second})
	if res.Err == nil || res.Err.Error() != "connection refused by "+addr {
		t.Errorf("Err = %v, want connection refused by %s", res.Err, addr)
	}
	if !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Errorf("Err %v does not wrap ECONNREFUSED", res.Err)
	}
	if res.StatusCode != 0 || res.Success() || res.RemoteIP != "127.0.0.1" {
		t.Errorf("StatusCode = %d, Success = %v, RemoteIP = %q", res.StatusCode, res.Success(), res.RemoteIP)
	}
}

func TestSendErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"no scheme", "example.com/hook", "unsupported protocol scheme"},
		{"bad url", "http://[::1", "invalid url: "},
		// RFC 6761 reserves .invalid; the wording of a resolver failure
		// depends on the machine's DNS, the prefix does not.
		{"dns", "http://hookmesh-test.invalid/hook", "dns: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: tt.url, Timeout: 5 * time.Second})
			if res.Err == nil || !strings.Contains(res.Err.Error(), tt.want) {
				t.Errorf("Err = %v, want it to contain %q", res.Err, tt.want)
			}
			if strings.Contains(res.Err.Error(), "Post ") {
				t.Errorf("Err = %q repeats the method and URL", res.Err)
			}
		})
	}
}

func TestSendUntrustedCertificate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	res := newSender(t, webhook.Config{}).Send(t.Context(), webhook.Request{URL: srv.URL, Timeout: 5 * time.Second})
	if res.Err == nil || res.Err.Error() != "tls: certificate signed by unknown authority" {
		t.Errorf("Err = %v, want tls: certificate signed by unknown authority", res.Err)
	}
}

func TestSendDialControlRefuses(t *testing.T) {
	t.Parallel()
	var reached atomic.Bool
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { reached.Store(true) })
	var checked atomic.Value
	s := newSender(t, webhook.Config{DialControl: func(network, address string, _ syscall.RawConn) error {
		checked.Store(address)
		return errors.New("destination not allowed")
	}})
	res := s.Send(t.Context(), webhook.Request{URL: srv.URL, Timeout: 5 * time.Second})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "destination not allowed") {
		t.Errorf("Err = %v, want the DialControl error", res.Err)
	}
	if reached.Load() {
		t.Error("the request reached the server")
	}
	// DialControl sees the resolved IP and port, not the name.
	if got := checked.Load(); got != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("DialControl saw %v, want %s", got, strings.TrimPrefix(srv.URL, "http://"))
	}
}

func TestSendCapsResponseBody(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		name      string
		cap       int64
		body      int
		wantKept  int
		truncated bool
	}{
		{"1 MiB body, default cap", 0, 1 << 20, 64 << 10, true},
		{"exactly the cap", 1000, 1000, 1000, false},
		{"one byte over", 1000, 1001, 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(big[:tt.body]) })
			res := newSender(t, webhook.Config{MaxResponseBody: tt.cap}).Send(t.Context(), webhook.Request{URL: srv.URL, Timeout: 5 * time.Second})
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if len(res.Body) != tt.wantKept || res.Truncated != tt.truncated {
				t.Errorf("kept %d truncated=%v, want %d truncated=%v", len(res.Body), res.Truncated, tt.wantKept, tt.truncated)
			}
			if !res.Success() {
				t.Error("a truncated 200 is still a success")
			}
		})
	}
}

// TestSendGzipBomb is not parallel: it measures the bytes allocated while it
// runs, which other tests would add to.
func TestSendGzipBomb(t *testing.T) {
	// 100 gzip members of 1 MiB of zeros each: one stream of 100 MiB to a
	// gzip reader, built without compressing 100 MiB here.
	zeros := make([]byte, 1<<20)
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(zeros)
	zw.Close()
	bomb := bytes.Repeat(member.Bytes(), 100)

	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding = %q: the transport must ask for gzip itself", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		w.Write(bomb)
	})
	const limit = 64 << 10
	s := newSender(t, webhook.Config{MaxResponseBody: limit})
	// The caller's Accept-Encoding would turn decompression off and keep
	// compressed bytes; the sender drops it.
	h := http.Header{"Accept-Encoding": {"gzip"}}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res := s.Send(t.Context(), webhook.Request{URL: srv.URL, Header: h, Timeout: 30 * time.Second})
	runtime.ReadMemStats(&after)

	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Body) != limit || !res.Truncated {
		t.Errorf("kept %d bytes truncated=%v, want %d and true", len(res.Body), res.Truncated, limit)
	}
	if !bytes.Equal(res.Body, zeros[:limit]) {
		t.Error("the kept body is not the decompressed zeros")
	}
	// Inflating the bomb would allocate at least 100 MiB; reading it capped
	// allocates the kept body, the decompressor's window and buffers.
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d KiB gzip bomb of 100 MiB: Send allocated %d KiB", len(bomb)>>10, allocated>>10)
	if allocated > 16<<20 {
		t.Errorf("Send allocated %d MiB for a %d KiB cap", allocated>>20, limit>>10)
	}
}

func TestSendPropagatesTraceContext(t *testing.T) {
	t.Parallel()
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })

	got := make(chan string, 1)
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") })
	s := newSender(t, webhook.Config{}, webhook.WithTracerProvider(tp), webhook.WithPropagator(propagation.TraceContext{}))

	ctx, parent := tp.Tracer("test").Start(t.Context(), "deliver")
	res := s.Send(ctx, webhook.Request{URL: srv.URL, Body: []byte(`{}`), Timeout: 5 * time.Second})
	parent.End()
	if res.Err != nil {
		t.Fatal(res.Err)
	}

	traceparent := <-got
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || parts[1] != parent.SpanContext().TraceID().String() {
		t.Fatalf("traceparent = %q, want the trace id %s", traceparent, parent.SpanContext().TraceID())
	}
	// The traceparent names the client span, a child of the caller's span.
	var client *tracetest.SpanStub
	for _, sp := range exporter.GetSpans() {
		if sp.SpanKind == trace.SpanKindClient {
			client = &sp
		}
	}
	if client == nil {
		t.Fatalf("no client span among %d spans", len(exporter.GetSpans()))
	}
	if client.Parent.SpanID() != parent.SpanContext().SpanID() || parts[2] != client.SpanContext.SpanID().String() {
		t.Errorf("client span %s (parent %s), traceparent span %s, caller span %s",
			client.SpanContext.SpanID(), client.Parent.SpanID(), parts[2], parent.SpanContext().SpanID())
	}
}

func TestSendHeaders(t *testing.T) {
	t.Parallel()
	type seen struct {
		header http.Header
		body   []byte
		method string
	}
	got := make(chan seen, 1)
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), b, r.Method}
	})
	body := []byte(`{"amount": 4200, "currency":"EUR"}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("X-Hookmesh-Event-Type", "invoice.paid")
	h["x-tenant"] = []string{"acme"} // not canonical: still sent once
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	h.Set("Content-Type", "text/plain") // the sender's own
	h.Set("Connection", "close")        // hop-by-hop: dropped

	res := newSender(t, webhook.Config{UserAgent: "hookmesh-test/2"}).Send(t.Context(), webhook.Request{URL: srv.URL, Body: body, Header: h, Timeout: 5 * time.Second})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	s := <-got
	if s.method != http.MethodPost || !bytes.Equal(s.body, body) {
		t.Errorf("got %s %q, want POST %q", s.method, s.body, body)
	}
	for name, want := range map[string][]string{
		"Webhook-Id":            {"msg_1"},
		"X-Hookmesh-Event-Type": {"invoice.paid"},
		"X-Tenant":              {"acme"},
		"X-Multi":               {"a", "b"},
		"Content-Type":          {"application/json"},
		"User-Agent":            {"hookmesh-test/2"},
	} {
		if got := s.header.Values(name); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if h.Get("Content-Type") != "text/plain" {
		t.Error("Send changed the caller's header")
	}
}

func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body int // response size, over the 64 KiB cap in the second case
	}{
		{"small responses", 100},
		{"truncated but drainable responses", 100 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reply := bytes.Repeat([]byte("y"), tt.body)
			srv, conns := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(reply) })
			s := newSender(t, webhook.Config{})
			for range 50 {
				if res := s.Send(t.Context(), webhook.Request{URL: srv.URL, Body: []byte(`{}`), Timeout: 5 * time.Second}); !res.Success() {
					t.Fatalf("Send: %d %v", res.StatusCode, res.Err)
				}
			}
			if n := conns.Load(); n > 2 {
				t.Errorf("50 sequential requests opened %d connections, want at most 2", n)
			}
		})
	}
}

// TestSendKeepsPoolSizedToConcurrency checks the idle pool holds as many
// connections as run at once: Go's default of 2 idle a host would reconnect
// for all but 2 of the second round.
func TestSendKeepsPoolSizedToConcurrency(t *testing.T) {
	t.Parallel()
	const n = 16
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	srv, conns := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		wait := all
		if arrived%n == 0 {
			close(all)
			all = make(chan struct{})
		}
		mu.Unlock()
		// Hold every request until n are in flight, so round one needs n
		// connections.
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
		}
	})
	s := newSender(t, webhook.Config{MaxConnsPerHost: n})
	for round := range 2 {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if res := s.Send(t.Context(), webhook.Request{URL: srv.URL, Timeout: 15 * time.Second}); !res.Success() {
					t.Errorf("round %d: %d %v", round, res.StatusCode, res.Err)
				}
			})
		}
		wg.Wait()
	}
	if got := conns.Load(); got != n {
		t.Errorf("two rounds of %d concurrent requests opened %d connections, want %d", n, got, n)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := webhook.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	if err := (webhook.Config{MaxResponseBody: -1}).Validate(); err == nil {
		t.Error("a negative MaxResponseBody validates")
	}
	if err := (webhook.Config{MaxConnsPerHost: -1}).Validate(); err == nil {
		t.Error("a negative MaxConnsPerHost validates")
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	body := bytes.Repeat([]byte(`{"k":"v"},`), 100)
	req := webhook.Request{URL: srv.URL, Body: body, Header: http.Header{"Webhook-Id": {"msg_1"}}, Timeout: 5 * time.Second}

	b.Run("serial", func(b *testing.B) {
		s := newSender(b, webhook.Config{})
		b.ReportAllocs()
		for b.Loop() {
			if res := s.Send(context.Background(), req); !res.Success() {
				b.Fatal(res.Err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("parallel", func(b *testing.B) {
		s := newSender(b, webhook.Config{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res := s.Send(context.Background(), req); !res.Success() {
					b.Error(res.Err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// sleep waits d or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	// The server notices a closed connection only once the body is read.
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(d):
	}
}
