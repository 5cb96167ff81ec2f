//go:build faults

// Package faults is the fault-injection suite: real hookmesh processes on
// a RabbitMQ node and a FerretDB of its own, under load, while processes
// are killed with SIGKILL, the broker is restarted, the database is
// stopped, or the receiver misbehaves. Each run counts events lost,
// unexpected deliveries, deliveries stuck in a non-final state, status that
// disagrees with what the receiver saw, and duplicates. `make faults`
// (scripts/faults.sh) sets it up and runs it.
package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

// suite is what TestMain set up.
var suite struct {
	dir      string
	hookmesh string
	// rabbit is the fault suite's RabbitMQ node; cluster the scale
	// suite's nodes (one of the two is set).
	rabbit  *rabbitNode
	cluster []*rabbitNode
	ferret  *ferretDB
	// history is the PostgreSQL database of the delivery history (the
	// database FerretDB keeps its data in too; schemas per run).
	history *historyDB
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	need := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			fmt.Fprintf(os.Stderr, "faults: %s is not set; run the suite with `make faults`\n", name)
			os.Exit(2)
		}
		return v
	}
	suite.dir = need("HOOKMESH_FAULTS_DIR")
	suite.hookmesh = need("HOOKMESH_FAULTS_HOOKMESH")
	server, ctl := need("HOOKMESH_FAULTS_RABBITMQ_SERVER"), need("HOOKMESH_FAULTS_RABBITMQCTL")
	suite.ferret = &ferretDB{bin: need("HOOKMESH_FAULTS_FERRETDB"), pgURL: need("HOOKMESH_FAULTS_POSTGRESQL_URL"),
		addr: "127.0.0.1:27020", dir: filepath.Join(suite.dir, "ferretdb")}
	suite.history = &historyDB{url: need("HOOKMESH_FAULTS_HISTORY_URL")}
	// `make scale` runs the scale suite (scale_test.go) on a cluster of
	// three nodes instead.
	if os.Getenv("HOOKMESH_FAULTS_SCALE") != "" {
		return runScaleMain(m, server, ctl)
	}
	suite.rabbit = &rabbitNode{server: server, ctl: ctl, name: "hookmesh_faults@localhost", port: 5673, dir: filepath.Join(suite.dir, "rabbitmq")}

	if err := suite.rabbit.init(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "faults: starting RabbitMQ node %s on 127.0.0.1:%d\n", suite.rabbit.name, suite.rabbit.port)
	if err := suite.rabbit.start(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer func() { _ = suite.rabbit.stop() }()
	fmt.Fprintf(os.Stderr, "faults: starting FerretDB on %s\n", suite.ferret.addr)
	if err := suite.ferret.start(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer suite.ferret.stop()
	return m.Run()
}

// run is one scenario's state while it runs.
type run struct {
	name  string
	dir   string
	stack *stack
	proj  *project
	recv  *receiver
	mu    sync.Mutex
	notes []string
	start time.Time
}

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf("%5.1fs ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.notes = append(r.notes, msg)
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "faults: %s: %s\n", r.name, msg)
}

// scenario is one run: a load, a receiver's behaviour and the faults
// injected while the load runs.
type scenario struct {
	name   string
	about  string
	behave behaviour
	events int
	rate   float64
	// faulty runs may deliver twice (with the same webhook-id); the others
	// must not.
	faulty bool
	inject func(ctx context.Context, r *run) error
}

var scenarios = []scenario{
	{name: "baseline", about: "no fault", behave: behaviour{latency: 20 * time.Millisecond}, events: 1000, rate: 80},
	{name: "flaky-receiver", about: "the receiver answers 500 to 30 % of requests and lets 10 % time out",
		behave: behaviour{latency: 20 * time.Millisecond, failShare: 0.3, timeoutShare: 0.1}, events: 1000, rate: 80, faulty: true},
	{name: "kill-deliverer", about: "kill -9 of a deliverer, then of both, with requests in flight; restarted 2 s later",
		behave: behaviour{latency: 150 * time.Millisecond}, events: 1000, rate: 80, faulty: true, inject: killDeliverers},
	{name: "kill-ingest", about: "kill -9 of ingest while it stores and publishes, until a kill leaves stored events unpublished; restarted 2 s later",
		behave: behaviour{latency: 20 * time.Millisecond}, events: 1500, rate: 150, faulty: true, inject: killIngest},
	{name: "kill-core", about: "kill -9 of the registry, router and status process under load; restarted 2 s later",
		behave: behaviour{latency: 20 * time.Millisecond}, events: 1000, rate: 80, faulty: true, inject: killCore},
	{name: "restart-rabbitmq", about: "RabbitMQ stopped (rabbitmqctl stop) and started again during the load",
		behave: behaviour{latency: 20 * time.Millisecond}, events: 1000, rate: 50, faulty: true, inject: restartRabbit},
	{name: "stop-database", about: "FerretDB stopped, and PostgreSQL refusing the history database, for 30 s during the load",
		behave: behaviour{latency: 20 * time.Millisecond}, events: 1000, rate: 50, faulty: true, inject: stopDatabase},
}

func TestFaults(t *testing.T) {
	if suite.rabbit == nil {
		t.Skip("the scale suite's cluster is running, not the fault suite's node")
	}
	var results []figures
	for i, sc := range scenarios {
		ok := t.Run(sc.name, func(t *testing.T) {
			f := runScenario(t, sc, uint64(i+1))
			results = append(results, f)
			t.Log(f.line())
			if f.lost != 0 || f.unexpected != 0 || f.stuck != 0 || f.mismatch != 0 {
				t.Errorf("%s: lost %d, unexpected %d, stuck %d, status mismatches %d: want 0 each (see %s)",
					sc.name, f.lost, f.unexpected, f.stuck, f.mismatch, f.dir)
			}
			if !sc.faulty && f.duplicates != 0 {
				t.Errorf("%s: %d deliveries received twice in a run without faults", sc.name, f.duplicates)
			}
			if f.refused != 0 {
				t.Errorf("%s: %d events were never accepted by ingest", sc.name, f.refused)
			}
		})
		if !ok && nearDeadline(t) {
			break
		}
	}
	report := renderReport("Fault injection", "Each run: 2 endpoints at one receiver, events alternating between them; the registry, router and status service in one process, ingest in another, two deliverers; RabbitMQ node and FerretDB of the suite's own.", results)
	fmt.Fprint(os.Stderr, "\n"+report)
	if err := os.WriteFile(filepath.Join(suite.dir, "report.md"), []byte(report), 0o644); err != nil {
		t.Error(err)
	}
}

// nearDeadline says whether too little of go test's timeout is left for
// another run.
func nearDeadline(t *testing.T) bool {
	d, ok := t.Deadline()
	return ok && time.Until(d) < 5*time.Minute
}

func runScenario(t *testing.T, sc scenario, seed uint64) figures {
	ctx := context.Background()
	dir := filepath.Join(suite.dir, "runs", sc.name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	recv, err := startReceiver(sc.behave, seed)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.close()
	s, err := startStack(ctx, strings.ReplaceAll(sc.name, "-", ""), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	p, err := s.newProject(ctx, recv, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{name: sc.name, dir: dir, stack: s, proj: p, recv: recv, start: time.Now()}
	r.note("%d events at %.0f/s to 2 endpoints; %s", sc.events, sc.rate, sc.about)

	injected := make(chan error, 1)
	go func() {
		if sc.inject == nil {
			injected <- nil
			return
		}
		injected <- sc.inject(ctx, r)
	}()
	loaded := load(ctx, p, sc.name, sc.events, sc.rate)
	r.note("load done: %d accepted (%d after a retried call), %d never accepted", len(loaded.accepted), loaded.retried, loaded.refused)
	if err := <-injected; err != nil {
		t.Fatalf("injecting the fault: %v", err)
	}
	// Every process is up again.
	for _, h := range s.all() {
		if !h.running() {
			t.Fatalf("%s is not running after the faults (log %s)", h.name, h.log)
		}
	}

	f := drain(t, r, loaded)
	f.name, f.dir, f.about = sc.name, dir, sc.about
	f.swept = sweptEvents(s.ingest.log)
	r.note("drained: %s", f.line())
	f.notes = r.notes
	return f
}

// drain waits for the receiver to have every delivery of what the load
// got accepted, then for the status service to settle, and counts.
func drain(t *testing.T, r *run, loaded loadResult) figures {
	ctx := context.Background()
	p, recv := r.proj, r.recv
	// Drain: wait for the receiver to have every delivery, then for the
	// status service to settle.
	want := expected(loaded.accepted)
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) && countLost(want, recv.snapshot()) > 0 {
		time.Sleep(time.Second)
	}
	r.note("receiver drained: %d deliveries missing", countLost(want, recv.snapshot()))
	var f figures
	deadline = time.Now().Add(2 * time.Minute)
	for {
		ds, err := p.deliveries(ctx)
		if err != nil {
			t.Logf("list deliveries: %v", err)
		} else {
			f = account(want, recv.snapshot(), ds, p)
			if f.stuck == 0 && f.mismatch == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	// Late arrivals would show now.
	time.Sleep(3 * time.Second)
	ds, err := p.deliveries(ctx)
	if err != nil {
		t.Fatalf("list deliveries: %v", err)
	}
	f = account(want, recv.snapshot(), ds, p)
	f.retried, f.refused = loaded.retried, loaded.refused
	return f
}

// key names a delivery by what the receiver can see: event and endpoint.
func key(eventID string, endpoint int) string { return fmt.Sprintf("%s/%d", eventID, endpoint) }

// expected is the set of deliveries the accepted events must make.
func expected(acc []accepted) map[string]bool {
	want := make(map[string]bool, len(acc))
	for _, a := range acc {
		want[key(a.eventID, a.endpoint)] = true
	}
	return want
}

func countLost(want map[string]bool, hits []hit) int {
	ok := map[string]bool{}
	for _, h := range hits {
		if h.code >= 200 && h.code < 300 {
			ok[key(h.eventID, h.endpoint)] = true
		}
	}
	n := 0
	for k := range want {
		if !ok[k] {
			n++
		}
	}
	return n
}

// figures are a run's counts.
type figures struct {
	name, about, dir string
	notes            []string

	accepted, retried, refused int
	requests                   int
	// attempts is the sum of the attempts the status service lists.
	attempts int
	// lost: accepted, never answered 2xx by the receiver. unexpected:
	// requests for no accepted event, with a bad signature, or a delivery
	// sent under two webhook-ids. stuck: not in a final state (or unknown
	// to the status service) after the drain. mismatch: final state other
	// than what the receiver answered.
	lost, unexpected, stuck, mismatch int
	// duplicates: deliveries the receiver answered 2xx more than once, all
	// with one webhook-id; extra is how many answers beyond the first.
	duplicates, extra int
	// swept is how many events the outbox sweeper published.
	swept int
}

func account(want map[string]bool, hits []hit, ds []*statusv1.Delivery, p *project) figures {
	f := figures{accepted: len(want), requests: len(hits)}
	type seen struct {
		ok         int
		webhookIDs map[string]bool
	}
	byKey := map[string]*seen{}
	for _, h := range hits {
		k := key(h.eventID, h.endpoint)
		if h.endpoint < 0 || !want[k] || !h.signed {
			f.unexpected++
			continue
		}
		s := byKey[k]
		if s == nil {
			s = &seen{webhookIDs: map[string]bool{}}
			byKey[k] = s
		}
		s.webhookIDs[h.webhookID] = true
		if h.code >= 200 && h.code < 300 {
			s.ok++
		}
	}
	for k := range want {
		s := byKey[k]
		switch {
		case s == nil || s.ok == 0:
			f.lost++
		case s.ok > 1:
			f.duplicates++
			f.extra += s.ok - 1
		}
		if s != nil && len(s.webhookIDs) > 1 {
			f.unexpected++
		}
	}
	endpointIndex := map[string]int{}
	for i, id := range p.endpoints {
		endpointIndex[id] = i
	}
	status := map[string]*statusv1.Delivery{}
	for _, d := range ds {
		i, ok := endpointIndex[d.GetEndpointId()]
		k := key(d.GetEventId(), i)
		if !ok || !want[k] || status[k] != nil {
			// A delivery of no accepted event, or a second one of an event
			// to an endpoint.
			f.unexpected++
			continue
		}
		status[k] = d
		f.attempts += int(d.GetAttempts())
	}
	for k := range want {
		d := status[k]
		if d == nil {
			f.stuck++
			continue
		}
		switch d.GetStatus() {
		case statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED, statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED:
		default:
			f.stuck++
			continue
		}
		received := byKey[k] != nil && byKey[k].ok > 0
		if (d.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS) != received {
			f.mismatch++
		}
	}
	return f
}

func (f figures) line() string {
	return fmt.Sprintf("accepted %d, requests %d, attempts listed %d, lost %d, unexpected %d, stuck %d, mismatched %d, duplicates %d (+%d requests), swept %d",
		f.accepted, f.requests, f.attempts, f.lost, f.unexpected, f.stuck, f.mismatch, f.duplicates, f.extra, f.swept)
}

// sweptEvents adds up what ingest's outbox sweeper logged it published.
func sweptEvents(logPath string) int {
	file, err := os.Open(logPath)
	if err != nil {
		return 0
	}
	defer file.Close()
	n := 0
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			Events int    `json:"events"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "published events the broker had not confirmed" {
			n += line.Events
		}
	}
	return n
}

// renderReport is a suite's report.md: a table of the runs' figures, then
// each run's notes.
func renderReport(title, intro string, rs []figures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", title, intro)
	b.WriteString("| run | accepted | requests | attempts listed | lost | unexpected | stuck | status ≠ receiver | duplicates (same webhook-id) | calls retried by the client | outbox sweeps |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, f := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d (+%d) | %d | %d |\n", f.name, f.accepted, f.requests, f.attempts,
			f.lost, f.unexpected, f.stuck, f.mismatch, f.duplicates, f.extra, f.retried, f.swept)
	}
	b.WriteString("\n")
	for _, f := range rs {
		fmt.Fprintf(&b, "## %s: %s\n\n", f.name, f.about)
		for _, n := range f.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}
