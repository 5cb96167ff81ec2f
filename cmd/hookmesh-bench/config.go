package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Ingestion shapes (DESIGN.md, "Ingestion shapes").
const (
	shapeSingle    = "single"
	shapeFanout    = "fanout"
	shapeBroadcast = "broadcast"
)

// Ingest protocols.
const (
	protocolConnect = "connect"
	protocolREST    = "rest"
)

// config is what the flags ask for.
type config struct {
	// apiURL is -api: hookmesh's HTTP address, where its profiler is.
	apiURL string
	// registryURL, ingestURL and statusURL are the bases of the three APIs;
	// each defaults to -api.
	registryURL, ingestURL, statusURL string
	adminKey                          string

	events      int
	concurrency int
	// rate is events per second on a fixed schedule; 0 sends as fast as
	// concurrency allows.
	rate            float64
	endpoints       int
	shape           string
	payloadBytes    int
	idempotencyKeys bool
	orderingKeys    int
	protocol        string
	http2           bool

	receiverAddr string
	timeout      time.Duration

	// pid is the hookmesh process whose CPU time is measured; 0 for none.
	pid int
	// watch are more processes whose CPU time is reported (FerretDB, the
	// broker, the database's backends), to see where the time goes.
	watch []watched

	statusCheck   bool
	statusTimeout time.Duration
	jsonOnly      bool

	// history is how many made-up deliveries to store in the status
	// service's PostgreSQL history (postgresURL, historySchema) before the
	// run, timing its queries over them historyCalls times each; 0: none.
	history       int
	historyCalls  int
	postgresURL   string
	historySchema string

	// suite runs every row of suiteRows, one after the other, and prints
	// them as one table; report is where the table is written as markdown.
	suite  bool
	report string
	label  string
	// profile is where a CPU profile of hookmesh is written (taken through
	// its /debug/pprof/profile), profileSeconds long: from the start of the
	// run, or with suite, from a few seconds into the steady 200/s row.
	profile        string
	profileSeconds int
	// prune measures the pruner: the history spread over pruneDays days,
	// a steady load of rate events/s for pruneFor, then the same load
	// while the pruners delete the oldest day, in batches of pruneBatch.
	prune      bool
	pruneDays  int
	pruneFor   time.Duration
	pruneBatch int
}

// watched names a process, by pid, or a group of processes: all those whose
// command line contains match (the backends of one PostgreSQL database), or
// all those whose executable is named comm (every PostgreSQL process).
type watched struct {
	name  string
	pid   int
	match string
	comm  string
}

// fan is how many deliveries one event makes.
func (c *config) fan() int {
	if c.shape == shapeSingle {
		return 1
	}
	return c.endpoints
}

// parseFlags reads the command line; getenv supplies HOOKMESH_ADMIN_KEY.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("hookmesh-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hookmesh-bench [flags]\n\nLoads a running hookmesh: creates a project and endpoints that point at an\nin-process receiver, sends events, and reports throughput and latency.")
		fs.PrintDefaults()
	}
	api := fs.String("api", "http://127.0.0.1:8080", "base URL of hookmesh (registry, ingest and status)")
	fs.StringVar(&c.registryURL, "registry-url", "", "base URL of the registry (default -api)")
	fs.StringVar(&c.ingestURL, "ingest-url", "", "base URL of ingest (default -api)")
	fs.StringVar(&c.statusURL, "status-url", "", "base URL of the status service (default -api)")
	fs.StringVar(&c.adminKey, "admin-key", getenv("HOOKMESH_ADMIN_KEY"), "hookmesh admin key (default $HOOKMESH_ADMIN_KEY)")
	fs.IntVar(&c.events, "events", 10000, "events to send")
	fs.IntVar(&c.concurrency, "concurrency", 64, "ingest calls in flight at most")
	fs.Float64Var(&c.rate, "rate", 0, "events per second on a fixed schedule (open loop); 0 = as fast as possible")
	fs.IntVar(&c.endpoints, "endpoints", 1, "endpoints to create; single: events go round-robin, fanout/broadcast: every event goes to all")
	fs.StringVar(&c.shape, "shape", shapeSingle, "single, fanout (all endpoints share one owner_id) or broadcast")
	fs.IntVar(&c.payloadBytes, "payload-bytes", 300, "size of each event's JSON payload")
	fs.BoolVar(&c.idempotencyKeys, "idempotency-keys", false, "give every event an idempotency key (one more write per event at ingest)")
	fs.IntVar(&c.orderingKeys, "ordering-keys", 0, "give event i the ordering key i mod this many (ordered delivery: each key's deliveries to an endpoint one at a time); 0 = no keys")
	fs.StringVar(&c.protocol, "protocol", protocolConnect, "connect (Connect protocol, binary proto) or rest (POST /api/v1/projects/{id}/events, JSON)")
	fs.BoolVar(&c.http2, "http2", false, "call ingest over cleartext HTTP/2 (h2c) instead of a pool of HTTP/1.1 connections")
	fs.StringVar(&c.receiverAddr, "receiver-addr", "127.0.0.1:0", "address of the in-process webhook receiver")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "how long to wait for every delivery once sending is over")
	fs.IntVar(&c.pid, "pid", 0, "pid of the hookmesh process, to measure its CPU time")
	watch := fs.String("watch", "", "more processes to measure, as name=PID, name=TEXT (every process whose command line contains TEXT) or name=comm:NAME (every process whose executable is NAME), comma-separated")
	fs.BoolVar(&c.statusCheck, "status-check", true, "wait for the status service to count every delivery as SUCCESS, and report its lag")
	fs.DurationVar(&c.statusTimeout, "status-timeout", 60*time.Second, "how long -status-check waits after the last delivery")
	fs.BoolVar(&c.jsonOnly, "json", false, "print only the JSON result line")
	fs.IntVar(&c.history, "history", 0, "before sending, store this many made-up deliveries in the status service's PostgreSQL history (COPY, in projects of their own) and time the status API's queries over them")
	fs.IntVar(&c.historyCalls, "history-calls", 200, "with -history, calls of each query")
	fs.StringVar(&c.postgresURL, "postgres-url", getenv("HOOKMESH_POSTGRES_URL"), "with -history, the status service's PostgreSQL database (default $HOOKMESH_POSTGRES_URL)")
	fs.StringVar(&c.historySchema, "history-schema", "hookmesh_status", "with -history, the status service's schema: <HOOKMESH_DATABASE_PREFIX>_status")
	fs.BoolVar(&c.suite, "suite", false, "run every benchmark of the suite (a burst to 1 endpoint, a fan-out burst, steady 200/s and 1,000/s) and print one table; -events, -rate, -shape, -endpoints and -concurrency are the suite's own")
	fs.StringVar(&c.report, "report", "", "with -suite, also write the table as markdown to this file (and each row's figures as JSON beside it, .json)")
	fs.StringVar(&c.label, "label", "", "with -report, a line saying what ran (scripts/bench.sh passes the commit)")
	fs.StringVar(&c.profile, "profile", "", "write a CPU profile of hookmesh to this file, fetched from -api's /debug/pprof/profile (hookmesh needs HOOKMESH_PPROF=true): from the start of sending, or with -suite during the steady 200/s row")
	fs.IntVar(&c.profileSeconds, "profile-seconds", 20, "with -profile, how long the profile lasts")
	fs.BoolVar(&c.prune, "prune", false, "with -history spread over -prune-days days: instead of the run, a steady load of -rate events/s (200 when 0) for -prune-for, then the same load while the retention pruners delete the oldest day; reports rows/s and the load's latencies with and without pruning")
	fs.IntVar(&c.pruneDays, "prune-days", 30, "with -prune, the days the history spans")
	fs.DurationVar(&c.pruneFor, "prune-for", 30*time.Second, "with -prune, how long each load phase lasts")
	fs.IntVar(&c.pruneBatch, "prune-batch", 5000, "with -prune, the pruner's batch size (HOOKMESH_RETENTION_BATCH_SIZE)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: every option is a flag (see -h)", fs.Args())
	}
	c.apiURL = strings.TrimRight(*api, "/")
	for _, u := range []*string{&c.registryURL, &c.ingestURL, &c.statusURL} {
		if *u == "" {
			*u = *api
		}
		*u = strings.TrimRight(*u, "/")
	}
	var err error
	if c.prune && c.rate == 0 {
		c.rate = 200
	}
	if c.watch, err = parseWatch(*watch); err != nil {
		return c, err
	}
	return c, c.validate()
}

func parseWatch(s string) ([]watched, error) {
	var out []watched
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, what, ok := strings.Cut(item, "=")
		if !ok || name == "" || what == "" {
			return nil, fmt.Errorf("-watch %q: want name=PID, name=TEXT or name=comm:NAME, e.g. ferretdb=1234, postgres=hookmesh_bench or postgres=comm:postgres", item)
		}
		if comm, ok := strings.CutPrefix(what, "comm:"); ok {
			if comm == "" {
				return nil, fmt.Errorf("-watch %q: want an executable name after comm:, e.g. postgres=comm:postgres", item)
			}
			out = append(out, watched{name: name, comm: comm})
			continue
		}
		if n, err := strconv.Atoi(what); err == nil {
			if n <= 0 {
				return nil, fmt.Errorf("-watch %q: pid must be positive", item)
			}
			out = append(out, watched{name: name, pid: n})
			continue
		}
		out = append(out, watched{name: name, match: what})
	}
	return out, nil
}

// validate says what is wrong with the flags and what to pass instead.
func (c *config) validate() error {
	if err := c.validateLoad(); err != nil {
		return err
	}
	if err := c.validateHistory(); err != nil {
		return err
	}
	return c.validateOutput()
}

// validateLoad checks the flags that shape the load: the admin key, how
// many events, how fast, to which endpoints and how long to wait.
func (c *config) validateLoad() error {
	switch {
	case c.adminKey == "":
		return errors.New("no admin key: pass -admin-key or set HOOKMESH_ADMIN_KEY (scripts/bench.sh generates one)")
	case c.events <= 0:
		return fmt.Errorf("-events %d: want at least 1", c.events)
	case c.concurrency <= 0:
		return fmt.Errorf("-concurrency %d: want at least 1", c.concurrency)
	case c.rate < 0:
		return fmt.Errorf("-rate %g: want events per second, or 0 for as fast as possible", c.rate)
	case c.endpoints <= 0:
		return fmt.Errorf("-endpoints %d: want at least 1", c.endpoints)
	case c.shape != shapeSingle && c.shape != shapeFanout && c.shape != shapeBroadcast:
		return fmt.Errorf("-shape %q: want single, fanout or broadcast", c.shape)
	case c.protocol != protocolConnect && c.protocol != protocolREST:
		return fmt.Errorf("-protocol %q: want connect or rest", c.protocol)
	case c.payloadBytes < minPayloadBytes:
		return fmt.Errorf("-payload-bytes %d: want at least %d (the payload carries a sequence number and a timestamp)", c.payloadBytes, minPayloadBytes)
	case c.timeout <= 0 || c.statusTimeout <= 0:
		return errors.New("-timeout and -status-timeout must be positive")
	}
	return nil
}

// validateHistory checks -history and -prune, which need each other and
// the status service's database.
func (c *config) validateHistory() error {
	switch {
	case c.history < 0:
		return fmt.Errorf("-history %d: want a number of deliveries, or 0 for none", c.history)
	case c.history > 0 && c.postgresURL == "":
		return errors.New("-history needs the status service's PostgreSQL database: pass -postgres-url or set HOOKMESH_POSTGRES_URL")
	case c.prune && c.history <= 0:
		return errors.New("-prune measures the pruner on a history: pass -history N (e.g. -history 1000000)")
	case c.prune && (c.pruneDays < 2 || c.pruneFor <= 0 || c.pruneBatch <= 0):
		return fmt.Errorf("-prune-days %d, -prune-for %s, -prune-batch %d: want at least 2 days, a positive duration and batch", c.pruneDays, c.pruneFor, c.pruneBatch)
	case c.history > 0 && c.historyCalls <= 0:
		return fmt.Errorf("-history-calls %d: want at least 1", c.historyCalls)
	}
	return nil
}

// validateOutput checks the flags that say where results go: -report and
// -profile.
func (c *config) validateOutput() error {
	switch {
	case c.report != "" && !c.suite:
		return errors.New("-report writes the table of -suite: pass -suite too")
	case c.profile != "" && c.profileSeconds <= 0:
		return fmt.Errorf("-profile-seconds %d: want at least 1", c.profileSeconds)
	}
	return nil
}
