package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// suiteRow is one benchmark of the suite.
type suiteRow struct {
	name        string
	shape       string
	endpoints   int
	events      int
	concurrency int
	rate        float64
	// profile: the CPU profile of -profile is recorded during this row.
	profile bool
}

// suiteRows are the benchmarks -suite runs, in order: two bursts (how many
// deliveries a second at most) and two steady rates (latency and CPU per
// delivery at a given load; the second near what two cores can carry).
var suiteRows = []suiteRow{
	{name: "2,000 events → 1 endpoint, 32 in flight", shape: shapeSingle, endpoints: 1, events: 2000, concurrency: 32},
	{name: "500 events × 10 endpoints (fan-out), 32 in flight", shape: shapeFanout, endpoints: 10, events: 500, concurrency: 32},
	{name: "steady 200 events/s for 30 s, 1 endpoint", shape: shapeSingle, endpoints: 1, events: 6000, concurrency: 64, rate: 200, profile: true},
	{name: "steady 1,000 events/s for 60 s, 1 endpoint", shape: shapeSingle, endpoints: 1, events: 60000, concurrency: 64, rate: 1000},
}

// suiteProfileAfter is how far into its row the profile starts: past the
// start, once the rate is steady.
const suiteProfileAfter = 5 * time.Second

// suiteResult is one row of the suite's table.
type suiteResult struct {
	Name string `json:"name"`
	// History is how many deliveries the status service's history held
	// when the row started: -history's, plus those of the rows before.
	History int     `json:"history"`
	Result  *result `json:"result"`
}

// runSuite runs every row of suiteRows on one hookmesh, one after the
// other (each waits for the status service to catch up before the next
// starts), prints the table and, with cfg.report, writes it as markdown.
func runSuite(ctx context.Context, cfg *config, meter *cpuMeter, recv *receiver, stdout io.Writer, logf func(string, ...any)) (int, error) {
	started := time.Now()
	var history *historyResult
	if cfg.history > 0 {
		var err error
		if history, err = runHistory(ctx, cfg, logf); err != nil {
			return 1, err
		}
	}
	rows, failures, err := runSuiteRows(ctx, cfg, meter, recv, logf)
	if err != nil {
		return 1, err
	}

	table := suiteTable(rows)
	if !cfg.jsonOnly {
		printSuite(stdout, table, history)
	}
	b, err := json.Marshal(struct {
		Rows    []suiteResult  `json:"rows"`
		History *historyResult `json:"history,omitempty"`
	}{rows, history})
	if err != nil {
		return 1, fmt.Errorf("encode results: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", b)
	if cfg.report != "" {
		if err := writeReport(cfg, started, table, history, b); err != nil {
			return 1, err
		}
		logf("wrote %s", cfg.report)
	}
	if len(failures) > 0 {
		return 1, fmt.Errorf("suite: %s", strings.Join(failures, "; "))
	}
	if ctx.Err() != nil {
		return 1, fmt.Errorf("suite interrupted after %d of %d rows", len(rows), len(suiteRows))
	}
	return 0, nil
}

// runSuiteRows runs every row of suiteRows until ctx ends, and returns
// their results and what failed in them (rows whose events were not all
// accepted and delivered); an error is a row that could not run.
// An interrupted ctx ends the loop without an error: runSuite still
// prints and reports the rows that ran, then says it was interrupted.
func runSuiteRows(ctx context.Context, cfg *config, meter *cpuMeter, recv *receiver, logf func(string, ...any)) ([]suiteResult, []string, error) {
	var rows []suiteResult
	var failures []string
	stored := cfg.history
	for i := 0; i < len(suiteRows) && ctx.Err() == nil; i++ {
		row := suiteRows[i]
		c, prof := row.config(cfg)
		logf("suite: %s, on a history of %d deliveries", row.name, stored)
		r, err := measure(ctx, &c, meter, recv, prof, logf)
		if err != nil {
			return nil, nil, fmt.Errorf("suite: %s: %w", row.name, err)
		}
		rows = append(rows, suiteResult{Name: row.name, History: stored, Result: r})
		stored += r.DeliveriesReceived
		if err := r.failure(); err != nil {
			failures = append(failures, row.name+": "+err.Error())
		}
		for _, e := range r.Errors {
			logf("suite: %s: %s", row.name, e)
		}
	}
	return rows, failures, nil
}

// config is cfg with the row's own load, and the profile to record during
// the row, if any.
func (row suiteRow) config(cfg *config) (config, *profileSpec) {
	c := *cfg
	c.shape, c.endpoints, c.events, c.concurrency, c.rate = row.shape, row.endpoints, row.events, row.concurrency, row.rate
	var prof *profileSpec
	if row.profile && cfg.profile != "" {
		prof = &profileSpec{url: cfg.apiURL, file: cfg.profile, after: suiteProfileAfter, seconds: cfg.profileSeconds}
	}
	return c, prof
}

// printSuite writes the suite's table for people: history's queries, when
// -history measured them, then the table and its legend.
func printSuite(w io.Writer, table string, history *historyResult) {
	if history != nil {
		history.printHuman(w)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, table)
	fmt.Fprintln(w)
	fmt.Fprint(w, suiteLegend)
}

// suiteLegend says what the table's columns are.
const suiteLegend = `history: deliveries in the status service's history when the row started.
delivered: deliveries received of those expected; deliveries/s: from the first ingest call to the last receipt.
p50/p90/p99: ingest→receipt latency, from when each ingest call was due to when the receiver got the webhook.
CPU columns: milliseconds of CPU (user+system, /proc/PID/stat) per delivery over the same window:
hookmesh (the process the bench started), RabbitMQ (beam.smp), FerretDB (the bench's ferretdb),
PostgreSQL (every postgres process, shared with whatever else uses the server).
machine busy: all CPUs, /proc/stat, over the same window. status lag: last receipt to the status
service counting every delivery SUCCESS.
`

// suiteTable is the rows as a markdown table.
func suiteTable(rows []suiteResult) string {
	var b strings.Builder
	b.WriteString("| run | history | delivered | deliveries/s | p50 ms | p90 ms | p99 ms | hookmesh ms | RabbitMQ ms | FerretDB ms | PostgreSQL ms | machine busy | status lag |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range rows {
		r := row.Result
		cells := []string{
			row.Name,
			thousands(row.History),
			fmt.Sprintf("%s/%s", thousands(r.DeliveriesReceived), thousands(r.ExpectedDeliveries)),
			thousands(int(r.DeliveriesPerSecond + 0.5)),
			fmt.Sprintf("%.1f", r.DeliveryLatency.P50),
			fmt.Sprintf("%.1f", r.DeliveryLatency.P90),
			fmt.Sprintf("%.1f", r.DeliveryLatency.P99),
		}
		for _, name := range []string{"hookmesh", "rabbitmq", "ferretdb", "postgres"} {
			cells = append(cells, perDelivery(r, name))
		}
		busy, lag := "—", "—"
		if r.CPU != nil {
			busy = fmt.Sprintf("%.0f %%", r.CPU.MachineBusyPct)
		}
		if s := r.Status; s != nil {
			lag = "incomplete"
			if s.Complete {
				lag = fmt.Sprintf("%.2f s", s.LagSeconds)
			}
		}
		cells = append(cells, busy, lag)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// perDelivery is the CPU milliseconds per delivery of the watched process
// name over the run's delivery phase, "—" when it was not measured.
func perDelivery(r *result, name string) string {
	if r.CPU == nil || r.DeliveriesReceived == 0 {
		return "—"
	}
	for _, u := range r.CPU.Procs {
		if u.Name != name {
			continue
		}
		if u.Gone {
			return "exited"
		}
		return fmt.Sprintf("%.2f", 1000*u.Seconds/float64(r.DeliveriesReceived))
	}
	return "—"
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeReport writes the table as markdown to cfg.report, with the date
// and what ran, and the rows' figures as JSON beside it.
func writeReport(cfg *config, started time.Time, table string, history *historyResult, results []byte) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# hookmesh benchmark, %s\n\n", started.UTC().Format("2006-01-02 15:04 MST"))
	if cfg.label != "" {
		fmt.Fprintf(&b, "%s\n\n", cfg.label)
	}
	host, _ := os.Hostname()
	store := "PostgreSQL"
	if cfg.postgresURL == "" {
		store = "FerretDB"
	}
	fmt.Fprintf(&b, "On %s (%d CPUs), delivery history in %s, %s protocol, %d-byte payloads, `-history %d`.\n\n",
		host, runtime.NumCPU(), store, cfg.protocol, cfg.payloadBytes, cfg.history)
	b.WriteString(table)
	b.WriteString("\n")
	b.WriteString(suiteLegend)
	if cfg.profile != "" {
		file := cfg.profile
		if filepath.Dir(file) == filepath.Dir(cfg.report) {
			file = filepath.Base(file) // beside the report
		}
		fmt.Fprintf(&b, "\nCPU profile of hookmesh during the steady 200/s row (%d s, from %.0f s into it): `%s`.\n",
			cfg.profileSeconds, suiteProfileAfter.Seconds(), file)
	}
	if history != nil {
		fmt.Fprintf(&b, "\nStatus and ingest API queries over the %s stored deliveries, ms:\n\n| query | p50 | p99 | max |\n| --- | ---: | ---: | ---: |\n",
			thousands(history.Deliveries))
		for _, q := range history.Queries {
			fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f |\n", q.Name, q.Latency.P50, q.Latency.P99, q.Latency.Max)
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.report), 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(cfg.report, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	jsonFile := strings.TrimSuffix(cfg.report, filepath.Ext(cfg.report)) + ".json"
	if err := os.WriteFile(jsonFile, append(results, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
