package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	amqp "github.com/rabbitmq/amqp091-go"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
	"github.com/hookmesh/hookmesh/internal/testenv"
	"github.com/hookmesh/hookmesh/services/ingest"
)

// broker is a connection to the test broker, as a source's producer has.
type broker struct {
	tb   testing.TB
	conn *amqp.Connection
}

func newBroker(tb testing.TB) *broker {
	tb.Helper()
	conn, err := amqp.Dial(testenv.AMQPURL(tb))
	if err != nil {
		tb.Fatalf("dial broker: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return &broker{tb: tb, conn: conn}
}

// channel opens a channel; a failed declare closes a channel, so each use
// takes its own.
func (b *broker) channel() *amqp.Channel {
	b.tb.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.tb.Fatalf("open channel: %v", err)
	}
	return ch
}

// queue returns a queue name of this test, and deletes the queue and its
// rejected queue when the test ends (hookmesh leaves them to the operator).
func (b *broker) queue() string {
	q := "src-" + strings.ToLower(ids.Random(10))
	b.tb.Cleanup(func() {
		ch, err := b.conn.Channel()
		if err != nil {
			return
		}
		defer ch.Close()
		_, _ = ch.QueueDelete(q, false, false, false)
		_, _ = ch.QueueDelete(q+ingest.RejectedSuffix, false, false, false)
	})
	return q
}

// inspect returns a queue's ready messages and consumers, or ok false when
// it does not exist.
func (b *broker) inspect(q string) (messages, consumers int, ok bool) {
	ch := b.channel()
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, 0, false
	}
	return st.Messages, st.Consumers, true
}

// waitConsumers waits until q has n consumers.
func (b *broker) waitConsumers(t *testing.T, q string, n int) {
	t.Helper()
	waitTrue(t, fmt.Sprintf("%d consumers of %s", n, q), func() bool {
		_, c, ok := b.inspect(q)
		return ok && c == n
	})
}

// publish publishes a persistent message to q with a confirm.
func (b *broker) publish(q, body, msgType, messageID string) {
	b.tb.Helper()
	ch := b.channel()
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.tb.Fatal(err)
	}
	var headers amqp.Table
	if msgType != "" {
		headers = amqp.Table{ingest.MessageTypeHeader: msgType}
	}
	dc, err := ch.PublishWithDeferredConfirm("", q, true, false, amqp.Publishing{
		Body: []byte(body), MessageId: messageID, Headers: headers, DeliveryMode: amqp.Persistent, ContentType: "application/json"})
	if err != nil {
		b.tb.Fatalf("publish to %s: %v", q, err)
	}
	if ok, err := dc.WaitContext(context.Background()); err != nil || !ok {
		b.tb.Fatalf("publish to %s not confirmed: %v", q, err)
	}
}

// get takes one message from q, or returns ok false when it is empty.
func (b *broker) get(q string) (amqp.Delivery, bool) {
	ch := b.channel()
	defer ch.Close()
	d, ok, err := ch.Get(q, true)
	if err != nil {
		b.tb.Fatalf("get from %s: %v", q, err)
	}
	return d, ok
}

// createSource creates a source on q and waits until ingest consumes it.
func createSource(t *testing.T, s *stack, b *broker, key, projectID, q string) *registryv1.Source {
	t.Helper()
	resp, err := s.clients(key).registry.CreateSource(context.Background(), connect.NewRequest(&registryv1.CreateSourceRequest{
		ProjectId: projectID, Name: "orders", Amqp: &registryv1.AMQPSource{Queue: q}}))
	if err != nil {
		t.Fatalf("create source: %v", err)
	}
	b.waitConsumers(t, q, 1)
	return resp.Msg.GetSource()
}

// waitCounters waits until the registry shows a source's counters.
func waitCounters(t *testing.T, c clients, projectID, sourceID string, accepted, duplicates, rejected uint64) {
	t.Helper()
	var got *registryv1.Source
	waitTrue(t, fmt.Sprintf("counters %d/%d/%d", accepted, duplicates, rejected), func() bool {
		resp, err := c.registry.ListSources(context.Background(), connect.NewRequest(&registryv1.ListSourcesRequest{ProjectId: projectID}))
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range resp.Msg.GetSources() {
			if src.GetId() == sourceID {
				got = src
			}
		}
		return got != nil && got.GetAccepted() == accepted && got.GetDuplicates() == duplicates && got.GetRejected() == rejected
	})
}

// bodyMark returns the "mark" field of a delivered body.
func bodyMark(r received) string {
	var v struct {
		Mark string `json:"mark"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.Mark
}

// TestSourceMessageTypes publishes a single, a fan-out and a broadcast
// message to a source's queue and sees each delivered where its type says,
// in both layouts; the source's counters and metrics count them.
func TestSourceMessageTypes(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			s := startStack(t, m, stackOptions{})
			b := newBroker(t)
			recv := newReceiver(t)
			recv.pathHeader = true
			projectID, key := s.project(t, nil)
			ep1 := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL + "/1", OwnerId: "acme"})
			s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL + "/2", OwnerId: "acme"})
			s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL + "/3", OwnerId: "other"})
			q := b.queue()
			src := createSource(t, s, b, key, projectID, q)

			b.publish(q, fmt.Sprintf(`{"endpoint_id":%q,"event_type":"order.paid","data":{"mark":"single"},"custom_headers":{"X-Shop":"north"}}`, ep1.GetId()), "", "")
			b.publish(q, `{"owner_id":"acme","event_type":"order.paid","data":{"mark":"fanout"}}`, "fanout", "")
			b.publish(q, `{"event_type":"order.paid","data":{"mark":"broadcast"}}`, "broadcast", "")

			paths := func(got []received, mark string) []string {
				var out []string
				for _, r := range got {
					if bodyMark(r) == mark {
						out = append(out, r.header.Get("X-Hookmesh-Test-Path"))
					}
				}
				return out
			}
			got := recv.waitFor(t, "six deliveries", func(got []received) bool { return len(got) >= 6 })
			for mark, want := range map[string]string{"single": "/1", "fanout": "/1,/2", "broadcast": "/1,/2,/3"} {
				p := paths(got, mark)
				slices.Sort(p)
				if strings.Join(p, ",") != want {
					t.Errorf("%s delivered to %v, want %s", mark, p, want)
				}
			}
			for _, r := range got {
				if bodyMark(r) == "single" && r.header.Get("X-Shop") != "north" {
					t.Errorf("single lacks its custom header: %v", r.header)
				}
			}
			waitCounters(t, s.clients(key), projectID, src.GetId(), 3, 0, 0)
			resp, err := http.Get(s.ingestURL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(metrics), "\n") {
				if strings.HasPrefix(line, "hookmesh_source_messages_total{") && strings.Contains(line, `source_id="`+src.GetId()+`"`) &&
					strings.Contains(line, `outcome="accepted"`) && strings.HasSuffix(line, " 3") {
					return
				}
			}
			t.Errorf("/metrics lacks hookmesh_source_messages_total of 3 accepted for %s", src.GetId())
		})
	}
}

// TestSourceMessageIDIsIdempotencyKey publishes one message twice under one
// message_id: one event is delivered, the repeat is counted as a duplicate.
func TestSourceMessageIDIsIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{})
	b := newBroker(t)
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	q := b.queue()
	src := createSource(t, s, b, key, projectID, q)
	body := func(mark string) string {
		return fmt.Sprintf(`{"endpoint_id":%q,"event_type":"order.paid","data":{"mark":%q}}`, ep.GetId(), mark)
	}
	b.publish(q, body("first"), "single", "order-1")
	b.publish(q, body("repeat"), "single", "order-1")
	// A body's own idempotency key wins over the message_id.
	b.publish(q, strings.Replace(body("keyed"), `"event_type"`, `"idempotency_key":"k-1","event_type"`, 1), "", "order-1")
	waitCounters(t, s.clients(key), projectID, src.GetId(), 2, 1, 0)
	got := recv.waitFor(t, "two deliveries", func(got []received) bool { return len(got) >= 2 })
	marks := map[string]int{}
	for _, r := range got {
		marks[bodyMark(r)]++
		if m := bodyMark(r); m != "keyed" && r.header.Get("X-Hookmesh-Idempotency-Key") != "order-1" {
			t.Errorf("idempotency key header = %q, want order-1", r.header.Get("X-Hookmesh-Idempotency-Key"))
		}
	}
	// The source handles several messages at once: either of the pair
	// may be the one stored first.
	if marks["first"]+marks["repeat"] != 1 || marks["keyed"] != 1 {
		t.Fatalf("delivered %v, want one of first and repeat once, and keyed once", marks)
	}
}

// TestSourceRejectsWhatCanNeverBeAnEvent publishes messages that can never
// be events: each lands in <queue>.rejected with its reason, and the source
// goes on with the next message.
func TestSourceRejectsWhatCanNeverBeAnEvent(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeAll, stackOptions{maxEventBytes: 1024})
	b := newBroker(t)
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	q := b.queue()
	src := createSource(t, s, b, key, projectID, q)
	cases := []struct{ id, body, msgType, reason string }{
		{"bad-json", `{"endpoint_id":`, "", "body: is not a valid JSON object"},
		{"unknown-field", fmt.Sprintf(`{"endpoint_id":%q,"event_type":"a","data":{},"idempotencyKey":"x"}`, ep.GetId()), "", `unknown field "idempotencyKey"`},
		{"unknown-endpoint", `{"endpoint_id":"ep_nosuchendpoint","event_type":"a","data":{}}`, "single", `endpoint "ep_nosuchendpoint" not found`},
		{"bad-type", `{"event_type":"a","data":{}}`, "multicast", `"multicast" is not a message type`},
		{"fanout-without-owner", `{"event_type":"a","data":{}}`, "fanout", "owner_id: must not be empty"},
		{"oversize", fmt.Sprintf(`{"endpoint_id":%q,"event_type":"a","data":{"pad":%q}}`, ep.GetId(), strings.Repeat("x", 2000)), "", "data: is"},
	}
	for _, c := range cases {
		b.publish(q, c.body, c.msgType, c.id)
	}
	b.publish(q, fmt.Sprintf(`{"endpoint_id":%q,"event_type":"a","data":{"mark":"good"}}`, ep.GetId()), "", "good")
	waitCounters(t, s.clients(key), projectID, src.GetId(), 1, 0, uint64(len(cases)))
	reasons := map[string]string{}
	for {
		d, ok := b.get(q + ingest.RejectedSuffix)
		if !ok {
			break
		}
		r, _ := d.Headers[ingest.RejectedReasonHeader].(string)
		reasons[d.MessageId] = r
		if d.Headers[ingest.RejectedSourceHeader] != src.GetId() {
			t.Errorf("%s: source header %v", d.MessageId, d.Headers[ingest.RejectedSourceHeader])
		}
		for _, c := range cases {
			if c.id == d.MessageId && string(d.Body) != c.body {
				t.Errorf("%s: rejected body %q, want the original %q", c.id, d.Body, c.body)
			}
		}
	}
	for _, c := range cases {
		if !strings.Contains(reasons[c.id], c.reason) {
			t.Errorf("%s: reason %q, want it to contain %q", c.id, reasons[c.id], c.reason)
		}
	}
	if n, _, _ := b.inspect(q); n != 0 {
		t.Errorf("%d messages left in the source queue", n)
	}
	recv.waitFor(t, "the good message", func(got []received) bool { return len(got) == 1 && bodyMark(got[0]) == "good" })
}

// TestSourcePauseActivateDelete pauses a source (its messages wait in the
// queue), activates it (they are delivered), and deletes it (the queue and
// what arrives later stay for the operator).
func TestSourcePauseActivateDelete(t *testing.T) {
	t.Parallel()
	s := startStack(t, modeSeparate, stackOptions{})
	b := newBroker(t)
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	c := s.clients(key)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	q := b.queue()
	src := createSource(t, s, b, key, projectID, q)
	msg := fmt.Sprintf(`{"endpoint_id":%q,"event_type":"a","data":{"mark":"waited"}}`, ep.GetId())

	if _, err := c.registry.PauseSource(context.Background(), connect.NewRequest(&registryv1.PauseSourceRequest{ProjectId: projectID, SourceId: src.GetId()})); err != nil {
		t.Fatal(err)
	}
	b.waitConsumers(t, q, 0)
	b.publish(q, msg, "", "m-1")
	// With no consumer the message can only wait; the queue's count
	// follows its log, so poll for it.
	waitTrue(t, "the message waiting in the paused source's queue", func() bool {
		n, consumers, _ := b.inspect(q)
		return n == 1 && consumers == 0
	})
	if _, err := c.registry.ActivateSource(context.Background(), connect.NewRequest(&registryv1.ActivateSourceRequest{ProjectId: projectID, SourceId: src.GetId()})); err != nil {
		t.Fatal(err)
	}
	recv.waitFor(t, "the waiting message", func(got []received) bool { return len(got) == 1 && bodyMark(got[0]) == "waited" })

	if _, err := c.registry.DeleteSource(context.Background(), connect.NewRequest(&registryv1.DeleteSourceRequest{ProjectId: projectID, SourceId: src.GetId()})); err != nil {
		t.Fatal(err)
	}
	b.waitConsumers(t, q, 0)
	b.publish(q, msg, "", "m-2")
	waitTrue(t, "the deleted source's queue kept, with the message", func() bool {
		n, consumers, ok := b.inspect(q)
		return ok && n == 1 && consumers == 0
	})
}

// TestSourceSurvivesIngestKill9 runs ingest as a process of its own,
// publishes 500 messages to a source, kills ingest with SIGKILL while it
// consumes them, and starts it again: every message becomes exactly one
// delivered event (what the killed process had stored is recognised by its
// message_id, which is the idempotency key).
func TestSourceSurvivesIngestKill9(t *testing.T) {
	t.Parallel()
	bin := buildHookmesh(t)
	s := startStack(t, modeAll, stackOptions{targets: []string{"registry", "router", "status", "deliverer"}})
	b := newBroker(t)
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})

	addr := freeAddr(t)
	env := []string{
		"HOOKMESH_HTTP_ADDR=" + addr,
		"HOOKMESH_MONGODB_URI=" + s.cfg.MongoURI,
		"HOOKMESH_POSTGRES_URL=" + s.cfg.PostgresURL,
		"HOOKMESH_DATABASE_PREFIX=" + s.cfg.DatabasePrefix,
		"HOOKMESH_AMQP_URL=" + s.cfg.AMQPURL,
		"HOOKMESH_AMQP_PREFIX=" + s.cfg.AMQPPrefix,
		"HOOKMESH_STATUS_PARTITIONS=" + strconv.Itoa(s.cfg.StatusPartitions),
		"HOOKMESH_ADMIN_KEY=" + adminKey,
		"HOOKMESH_REGISTRY_URL=" + s.registryURL,
		"HOOKMESH_STATUS_URL=" + s.statusURL,
		"HOOKMESH_OUTBOX_SWEEP_INTERVAL=500ms",
		"HOOKMESH_OUTBOX_GRACE=3s",
		"HOOKMESH_SOURCE_POLL_INTERVAL=1s",
		"HOOKMESH_LOG_LEVEL=info",
	}
	logPath := filepath.Join(t.TempDir(), "ingest.log")
	start := func() *exec.Cmd {
		cmd := startProcess(t, bin, logPath, env, "ingest")
		waitTrue(t, "ingest ready", func() bool {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return cmd
	}
	first := start()
	// The messages wait in the queue before the source exists, so that the
	// kill finds ingest in the middle of them.
	q := b.queue()
	ch := b.channel()
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	const n = 500
	for i := range n {
		b.publish(q, fmt.Sprintf(`{"endpoint_id":%q,"event_type":"order.paid","data":{"mark":"m%d"}}`, ep.GetId(), i), "", fmt.Sprintf("msg-%d", i))
	}
	if _, err := s.clients(key).registry.CreateSource(context.Background(), connect.NewRequest(&registryv1.CreateSourceRequest{
		ProjectId: projectID, Name: "orders", Amqp: &registryv1.AMQPSource{Queue: q}})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if left, _, _ := b.inspect(q); left <= n-50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not start on the source; log:\n%s", tailFile(logPath, 30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	left, _, _ := b.inspect(q)
	t.Logf("killed ingest with %d of %d messages in the queue and %d delivered", left, n, len(recv.requests()))
	if left == 0 {
		t.Fatalf("ingest had taken every message before the kill: the test killed it too late")
	}
	start()

	marks := func(got []received) map[string]map[string]bool {
		events := map[string]map[string]bool{}
		for _, r := range got {
			m := bodyMark(r)
			if events[m] == nil {
				events[m] = map[string]bool{}
			}
			events[m][r.header.Get("X-Hookmesh-Event-Id")] = true
		}
		return events
	}
	deadline = time.Now().Add(3 * time.Minute)
	for {
		got := recv.requests()
		if len(marks(got)) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered after the restart; ingest log:\n%s", len(marks(got)), n, tailFile(logPath, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.waitConsumers(t, q, 1)
	waitTrue(t, "the source queue drained", func() bool { left, _, _ := b.inspect(q); return left == 0 })
	for mark, evs := range marks(recv.requests()) {
		if len(evs) != 1 {
			t.Errorf("%s delivered as %d events: %v", mark, len(evs), evs)
		}
	}
	if d, ok := b.get(q + ingest.RejectedSuffix); ok {
		t.Errorf("a message was rejected: %s (%v)", d.Body, d.Headers[ingest.RejectedReasonHeader])
	}
}

// buildHookmesh builds the hookmesh binary for tests that run it as a
// process.
func buildHookmesh(tb testing.TB) string {
	tb.Helper()
	// The go command that runs the tests, which may not be on PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(tb.TempDir(), "hookmesh")
	cmd := exec.Command(gobin, "build", "-o", out, "../cmd/hookmesh")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build hookmesh: %v\n%s", err, b)
	}
	return out
}

// startProcess starts bin with args and only env's HOOKMESH_ variables,
// logging to logPath; it is killed when the test ends.
func startProcess(tb testing.TB, bin, logPath string, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKMESH_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", bin, err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		f.Close()
	})
	return cmd
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestDashboardSources creates a source in the dashboard, sees its
// counter count a message published to its queue, and pauses it there.
func TestDashboardSources(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t, modeAll, stackOptions{})
	br := newBroker(t)
	recv := newReceiver(t)
	projectID, key := s.project(t, nil)
	ep := s.endpoint(t, key, &registryv1.CreateEndpointRequest{ProjectId: projectID, Url: recv.URL})
	q := br.queue()

	b.signIn(s.registryURL+"/ui/", key, projectID)
	b.run("create a source",
		click(tid("nav-sources")),
		typeInto(tid("source-name"), "orders"),
		typeInto(tid("source-queue"), q),
		click(tid("source-create")),
		waitText(tid("sources-table"), q),
	)
	list, err := s.clients(key).registry.ListSources(context.Background(), connect.NewRequest(&registryv1.ListSourcesRequest{ProjectId: projectID}))
	if err != nil || len(list.Msg.GetSources()) != 1 || list.Msg.GetSources()[0].GetAmqp().GetQueue() != q {
		t.Fatalf("sources after creating one in the dashboard: %v %v", list, err)
	}
	id := list.Msg.GetSources()[0].GetId()
	br.waitConsumers(t, q, 1)
	br.publish(q, fmt.Sprintf(`{"endpoint_id":%q,"event_type":"order.paid","data":{"mark":"ui"}}`, ep.GetId()), "", "ui-1")
	b.run("see the message counted", waitText(tid("source-accepted-"+id), "1"))
	b.shot("sources")
	b.run("pause the source", click(tid("source-pause-"+id)), waitText(tid("source-status-"+id), "paused"))
	br.waitConsumers(t, q, 0)
}
