//go:build faults

package faults

// The scale suite (`make scale`): hookmesh as separate processes, two of
// each of ingest, router and deliverer, on a RabbitMQ cluster of three
// nodes of the suite's own, under a steady load while a broker node is
// stopped and started again and then one replica of each replicated
// service is killed with SIGKILL. It reuses the fault suite's processes,
// receiver, load and accounting; TestMain starts the cluster instead of
// the fault suite's node when HOOKMESH_FAULTS_SCALE is set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	// scaleRate is the load's events a second, over the two ingest
	// processes; the load lasts at least scaleMinLoad, and goes on until
	// scaleAfterFaults after the last fault.
	scaleRate        = 150
	scaleMinLoad     = 60 * time.Second
	scaleAfterFaults = 10 * time.Second
	// scaleNodeDown is how long the stopped node stays down.
	scaleNodeDown = 15 * time.Second
)

// runScaleMain is TestMain for the scale suite: three clustered RabbitMQ
// nodes (hookmesh_scale_<n>@localhost on 127.0.0.1:568<n>, distribution on
// 2568<n>, data under the suite's directory) and a FerretDB on 27021, all
// stopped, and the nodes' data deleted, at the end.
func runScaleMain(m *testing.M, server, ctl string) int {
	suite.ferret.addr = "127.0.0.1:27021"
	for i := range 3 {
		suite.cluster = append(suite.cluster, &rabbitNode{server: server, ctl: ctl,
			name: fmt.Sprintf("hookmesh_scale_%d@localhost", i+1), port: 5681 + i,
			dir: filepath.Join(suite.dir, fmt.Sprintf("rabbitmq-%d", i+1)),
			// RabbitMQ 3.10 reads a new quorum queue's replica count from
			// this application setting (there is no rabbitmq.conf key for
			// it before 3.12); 3 is its default too, said here so that the
			// suite does not depend on it.
			advanced: "[{rabbit, [{quorum_cluster_size, 3}]}].\n",
			// Three nodes on a busy machine: no scheduler busy-waiting.
			erlArgs: "+sbwt none +sbwtdcpu none +sbwtdio none"})
	}
	code := 1
	defer func() {
		var wg sync.WaitGroup
		for _, n := range suite.cluster {
			wg.Go(func() { _ = n.stop() })
		}
		wg.Wait()
		// The nodes' data goes; a failed run keeps it, and the logs, to
		// look at (the next run starts afresh anyway).
		if code == 0 {
			for _, n := range suite.cluster {
				_ = os.RemoveAll(n.dir)
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "scale: starting a RabbitMQ cluster of %d nodes\n", len(suite.cluster))
	start := time.Now()
	if err := startCluster(suite.cluster); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return code
	}
	fmt.Fprintf(os.Stderr, "scale: cluster of %d nodes running after %.0fs\n", len(suite.cluster), time.Since(start).Seconds())
	fmt.Fprintf(os.Stderr, "scale: starting FerretDB on %s\n", suite.ferret.addr)
	if err := suite.ferret.start(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return code
	}
	defer func() {
		suite.ferret.stop()
		if code == 0 {
			_ = os.RemoveAll(suite.ferret.dir)
		}
	}()
	code = m.Run()
	return code
}

// startCluster boots the nodes at once, each alone, then joins the others
// to the first one by one, as an operator does: stop_app, join_cluster,
// start_app. They share the Erlang cookie of the user running the suite
// ($HOME/.erlang.cookie), as rabbitmqctl does.
func startCluster(nodes []*rabbitNode) error {
	for _, n := range nodes {
		if err := n.init(); err != nil {
			return err
		}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	first := nodes[0]
	for _, n := range nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", first.name}, {"start_app"}} {
			if _, err := n.control(args...); err != nil {
				return err
			}
		}
		if err := waitAMQP(n); err != nil {
			return err
		}
	}
	return waitFor(nil, 2*time.Minute, fmt.Sprintf("%d running nodes in the cluster", len(nodes)), func() bool {
		running, err := runningNodes(first)
		return err == nil && len(running) == len(nodes)
	})
}

// waitAMQP waits until the node takes AMQP connections.
func waitAMQP(n *rabbitNode) error {
	return waitFor(n.proc, 2*time.Minute, "AMQP on "+n.name, func() bool {
		c, err := amqp.Dial(n.url())
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// runningNodes asks a node which nodes of its cluster are running.
func runningNodes(n *rabbitNode) ([]string, error) {
	out, err := n.control("cluster_status", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var st struct {
		RunningNodes []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &st); err != nil {
		return nil, fmt.Errorf("decode cluster_status: %w: %s", err, out)
	}
	return st.RunningNodes, nil
}

// jsonPart drops what rabbitmqctl prints before its JSON (a warning, say).
func jsonPart(out string) string {
	if i := strings.IndexAny(out, "[{"); i > 0 {
		return out[i:]
	}
	return out
}

// quorumQueues lists the quorum queues of the cluster: their number of
// members (replicas) and their leader, as `rabbitmqctl list_queues name
// type members leader` shows them.
type quorumQueues struct {
	byCount map[int]int
	leaders map[string]int // by node
}

func listQuorumQueues(n *rabbitNode) (quorumQueues, error) {
	qq := quorumQueues{byCount: map[int]int{}, leaders: map[string]int{}}
	out, err := n.control("list_queues", "-q", "--formatter", "json", "name", "type", "members", "leader")
	if err != nil {
		return qq, err
	}
	var qs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		// A list of nodes for a quorum queue, "" for a classic one.
		Members json.RawMessage `json:"members"`
		Leader  string          `json:"leader"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &qs); err != nil {
		return qq, fmt.Errorf("decode list_queues: %w: %s", err, out)
	}
	for _, q := range qs {
		if q.Type != "quorum" {
			continue
		}
		var members []string
		if err := json.Unmarshal(q.Members, &members); err != nil {
			return qq, fmt.Errorf("decode the members of %s: %w", q.Name, err)
		}
		qq.byCount[len(members)]++
		qq.leaders[q.Leader]++
	}
	return qq, nil
}

// brokerOf says which node a hookmesh process is connected to, from the
// last connection its log reports.
func brokerOf(h *hookmesh) *rabbitNode {
	b, err := os.ReadFile(h.log)
	if err != nil {
		return nil
	}
	var node *rabbitNode
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Msg    string `json:"msg"`
			Broker string `json:"broker"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || (l.Msg != "amqp connected" && l.Msg != "amqp connection restored") {
			continue
		}
		for _, n := range suite.cluster {
			if strings.HasPrefix(l.Broker, fmt.Sprintf("127.0.0.1:%d/", n.port)) {
				node = n
			}
		}
	}
	return node
}

// describeReplicas is "12 quorum queues with 3 replicas".
func describeReplicas(qq quorumQueues) string {
	byCount := qq.byCount
	var counts []int
	for c := range byCount {
		counts = append(counts, c)
	}
	sort.Ints(counts)
	var parts []string
	for _, c := range counts {
		parts = append(parts, fmt.Sprintf("%d quorum queues with %d replicas", byCount[c], c))
	}
	if len(parts) == 0 {
		return "no quorum queues"
	}
	return strings.Join(parts, ", ")
}

// scaleStack is the scale suite's hookmesh: the registry and status
// service in one process, and two processes each of ingest, router and
// deliverer, each given the three nodes in an order of its own.
type scaleStack struct {
	prefix                       string
	core                         *hookmesh
	ingests, routers, deliverers []*hookmesh
}

func (s *scaleStack) all() []*hookmesh {
	all := []*hookmesh{s.core}
	all = append(all, s.ingests...)
	all = append(all, s.routers...)
	return append(all, s.deliverers...)
}

func (s *scaleStack) ingestURLs() []string {
	var urls []string
	for _, h := range s.ingests {
		urls = append(urls, h.url())
	}
	return urls
}

func startScaleStack(dir string) (*scaleStack, error) {
	s := &scaleStack{prefix: runPrefix("scale")}
	made := 0
	mk := func(name, targets string, extra ...string) (*hookmesh, error) {
		// Each process lists the nodes from a different one (hookmesh
		// starts at a random node of its list anyway).
		var urls []string
		for i := range suite.cluster {
			urls = append(urls, suite.cluster[(made+i)%len(suite.cluster)].url())
		}
		made++
		return newHookmesh(dir, name, targets, append(commonEnv(s.prefix, strings.Join(urls, ",")), extra...)...)
	}
	var err error
	if s.core, err = mk("core", "registry,status"); err != nil {
		return nil, err
	}
	registry := "HOOKMESH_REGISTRY_URL=" + s.core.url()
	for i := range 2 {
		n := strconv.Itoa(i + 1)
		in, err := mk("ingest-"+n, "ingest", registry, "HOOKMESH_STATUS_URL="+s.core.url())
		if err != nil {
			return nil, err
		}
		ro, err := mk("router-"+n, "router", registry)
		if err != nil {
			return nil, err
		}
		de, err := mk("deliverer-"+n, "deliverer", registry, "HOOKMESH_DELIVERY_CONCURRENCY=32")
		if err != nil {
			return nil, err
		}
		s.ingests, s.routers, s.deliverers = append(s.ingests, in), append(s.routers, ro), append(s.deliverers, de)
	}
	s.core.env = append(s.core.env, "HOOKMESH_INGEST_URL="+s.ingests[0].url())
	if err := s.core.start(); err != nil {
		return nil, err
	}
	rest := s.all()[1:]
	errs := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, p := range rest {
		wg.Go(func() { errs[i] = p.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *scaleStack) stop() {
	var wg sync.WaitGroup
	for _, p := range s.all() {
		wg.Go(func() { p.signal(syscall.SIGTERM, 30*time.Second) })
	}
	wg.Wait()
}

const scaleAbout = "a RabbitMQ node stopped (rabbitmqctl stop) and started again after 15 s; then kill -9 of one ingest, one router and one deliverer, not restarted"

func TestScale(t *testing.T) {
	if len(suite.cluster) == 0 {
		t.Skip("the fault suite's node is running, not the scale suite's cluster")
	}
	ctx := context.Background()
	dir := filepath.Join(suite.dir, "run")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	recv, err := startReceiver(behaviour{latency: 20 * time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.close()
	s, err := startScaleStack(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	p, err := newProject(ctx, recv, 2, s.core.url(), s.ingestURLs()...)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{name: "scale", dir: dir, proj: p, recv: recv, start: time.Now()}
	qq, err := listQuorumQueues(suite.cluster[1])
	if err != nil {
		t.Fatal(err)
	}
	r.note("cluster of %d nodes; %s", len(suite.cluster), describeReplicas(qq))
	if len(qq.byCount) != 1 || qq.byCount[len(suite.cluster)] == 0 {
		t.Fatalf("want every quorum queue replicated on the %d nodes: %s", len(suite.cluster), describeReplicas(qq))
	}
	r.note("load: %d events/s over 2 ingest processes to 2 endpoints, for %v and until %v after the last fault; %s",
		scaleRate, scaleMinLoad, scaleAfterFaults, scaleAbout)

	var faultsDone time.Time
	var doneMu sync.Mutex
	injected := make(chan error, 1)
	go func() {
		err := scaleFaults(r, s)
		doneMu.Lock()
		faultsDone = time.Now()
		doneMu.Unlock()
		injected <- err
	}()
	loadStart := time.Now()
	// Calls that wait out a retry after the killed ingest refused them
	// hold their place: room for a few seconds of the rate.
	loaded := loadWhile(ctx, p, "scale", scaleRate, 4*scaleRate, func(i int) bool {
		doneMu.Lock()
		defer doneMu.Unlock()
		// Not beyond three times the planned load, should a fault hang.
		if i >= 3*scaleRate*int(scaleMinLoad/time.Second) {
			return false
		}
		return time.Since(loadStart) < scaleMinLoad || faultsDone.IsZero() || time.Since(faultsDone) < scaleAfterFaults
	})
	elapsed := time.Since(loadStart)
	r.note("load done: %d accepted in %.0fs (%.0f/s; %d after a retried call), %d never accepted",
		len(loaded.accepted), elapsed.Seconds(), float64(len(loaded.accepted))/elapsed.Seconds(), loaded.retried, loaded.refused)
	if err := <-injected; err != nil {
		t.Fatalf("injecting the faults: %v", err)
	}
	for _, h := range []*hookmesh{s.core, s.ingests[1], s.routers[1], s.deliverers[1]} {
		if !h.running() {
			t.Fatalf("%s is not running after the faults (log %s)", h.name, h.log)
		}
	}

	f := drain(t, r, loaded)
	f.name, f.dir, f.about = "scale", dir, scaleAbout
	for _, h := range s.ingests {
		f.swept += sweptEvents(h.log)
	}
	qq, err = listQuorumQueues(suite.cluster[1])
	if err != nil {
		t.Fatal(err)
	}
	r.note("after the drain: %s", describeReplicas(qq))
	if len(qq.byCount) != 1 || qq.byCount[len(suite.cluster)] == 0 {
		t.Errorf("want every quorum queue replicated on the %d nodes after the node's restart: %s", len(suite.cluster), describeReplicas(qq))
	}
	r.note("drained: %s", f.line())
	f.notes = r.notes
	t.Log(f.line())
	if f.lost != 0 || f.unexpected != 0 || f.stuck != 0 || f.mismatch != 0 {
		t.Errorf("lost %d, unexpected %d, stuck %d, status mismatches %d: want 0 each (see %s)", f.lost, f.unexpected, f.stuck, f.mismatch, dir)
	}
	if f.refused != 0 {
		t.Errorf("%d events were never accepted by ingest", f.refused)
	}
	report := renderReport("Scale", fmt.Sprintf("One run: the registry and status service in one process; two processes each of ingest, router and deliverer; "+
		"a RabbitMQ cluster of %d nodes (quorum queues with a replica on each), each process given the three nodes in its own order; "+
		"FerretDB and the PostgreSQL history; 2 endpoints at one receiver answering in 20 ms. "+
		"A call to ingest that fails (most of them sent to the killed ingest) is made again on the other ingest process with the same idempotency key.", len(suite.cluster)), []figures{f})
	fmt.Fprint(os.Stderr, "\n"+report)
	if err := os.WriteFile(filepath.Join(suite.dir, "report.md"), []byte(report), 0o644); err != nil {
		t.Error(err)
	}
}

// scaleFaults stops the node most processes are connected to the way an
// operator does and starts it again, then kills one replica of each of
// ingest, router and deliverer; those stay dead, so that the other
// replica of each carries the rest of the load and takes over what the
// killed one left.
func scaleFaults(r *run, s *scaleStack) error {
	time.Sleep(5 * time.Second)
	if err := bounceNode(r, s, true); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	s.ingests[0].kill9()
	r.note("kill -9 %s", s.ingests[0].name)
	time.Sleep(2 * time.Second)
	s.routers[0].kill9()
	r.note("kill -9 %s", s.routers[0].name)
	time.Sleep(2 * time.Second)
	n := inFlight(r, 5*time.Second)
	s.deliverers[0].kill9()
	r.note("kill -9 %s with %d requests in flight at the receiver; none of the three restarted", s.deliverers[0].name, n)
	return nil
}

// bounceNode stops the node most processes use the way an operator does,
// waits until every process on it has moved to another, and starts it
// again after scaleNodeDown.
func bounceNode(r *run, s *scaleStack, leader bool) error {
	// hookmesh starts at a random node of its list. With leader, the node
	// stopped is the one leading the most quorum queues (their leaders
	// move) among those some process is connected to (those processes
	// move), else the one most processes are connected to; without, the
	// one leading the fewest among those some process is connected to.
	on := map[*rabbitNode][]string{}
	for _, h := range s.all() {
		if n := brokerOf(h); n != nil {
			on[n] = append(on[n], h.name)
		}
	}
	qq, err := listQuorumQueues(suite.cluster[0])
	if err != nil {
		return err
	}
	node := suite.cluster[0]
	for _, n := range suite.cluster {
		more := qq.leaders[n.name] > qq.leaders[node.name]
		if !leader {
			more = qq.leaders[n.name] < qq.leaders[node.name]
		}
		better := more || (qq.leaders[n.name] == qq.leaders[node.name] && len(on[n]) > len(on[node]))
		if len(on[n]) > 0 && (len(on[node]) == 0 || better) {
			node = n
		}
	}
	leaders := qq.leaders[node.name]
	start := time.Now()
	if err := node.stop(); err != nil {
		return err
	}
	r.note("RabbitMQ node %s stopped (rabbitmqctl stop, %.1fs); connected to it: %s; leader of %d quorum queues",
		node.name, time.Since(start).Seconds(), strings.Join(on[node], ", "), leaders)
	// Every process that was on it moves to another node of its list
	// (hookmesh's failover); the node stays away at least scaleNodeDown.
	moved := func() []string {
		var out []string
		for _, name := range on[node] {
			for _, h := range s.all() {
				if h.name == name {
					if n := brokerOf(h); n != nil && n != node {
						out = append(out, h.name+" to "+n.name)
					}
				}
			}
		}
		return out
	}
	if err := waitFor(nil, 2*time.Minute, "the processes on the stopped node to move to another", func() bool {
		return len(moved()) == len(on[node])
	}); err != nil {
		return err
	}
	r.note("moved away within %.1fs of rabbitmqctl stop: %s", time.Since(start).Seconds(), strings.Join(moved(), ", "))
	if d := scaleNodeDown - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	start = time.Now()
	if err := node.start(); err != nil {
		return err
	}
	if err := waitFor(nil, 2*time.Minute, "the node back in the cluster", func() bool {
		running, err := runningNodes(suite.cluster[1])
		return err == nil && len(running) == len(suite.cluster)
	}); err != nil {
		return err
	}
	r.note("RabbitMQ node %s started again: in the cluster and taking connections after %.1fs", node.name, time.Since(start).Seconds())
	return nil
}
