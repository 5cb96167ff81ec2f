package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// result is everything the benchmark measured. It is printed for people
// and as one JSON line.
type result struct {
	Shape        string  `json:"shape"`
	Protocol     string  `json:"protocol"`
	Endpoints    int     `json:"endpoints"`
	Concurrency  int     `json:"concurrency"`
	Rate         float64 `json:"rate"` // 0: as fast as possible
	PayloadBytes int     `json:"payload_bytes"`
	ProjectID    string  `json:"project_id"`

	EventsPlanned int `json:"events_planned"`
	EventsSent    int `json:"events_sent"` // ingest calls that succeeded
	IngestErrors  int `json:"ingest_errors"`
	// IngestSeconds is from the first call's start to the last call's end.
	IngestSeconds   float64 `json:"ingest_seconds"`
	IngestPerSecond float64 `json:"ingest_per_second"`
	// IngestLatency is each call's end minus when it was due (see call).
	IngestLatency latency `json:"ingest_latency_ms"`
	// ScheduleLagMaxMillis is how late the latest call started (with -rate:
	// all concurrency slots were busy).
	ScheduleLagMaxMillis float64 `json:"schedule_lag_max_ms"`

	ExpectedDeliveries int `json:"expected_deliveries"`
	DeliveriesReceived int `json:"deliveries_received"`
	Missing            int `json:"missing"`
	Duplicates         int `json:"duplicates"`
	// Unexpected deliveries are of events this run did not get an id for
	// (a failed call whose event was stored anyway) or to the wrong endpoint.
	Unexpected int `json:"unexpected"`
	// DeliverySeconds is from the first call's start to the last receipt.
	DeliverySeconds     float64 `json:"delivery_seconds"`
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	// DeliveryLatency is per delivery: its receipt minus when its event's
	// ingest call was due.
	DeliveryLatency latency `json:"delivery_latency_ms"`

	// CPU is over the delivery phase (first call to last receipt) and over
	// the whole run (to the status service's catching up).
	CPU      *cpuWindow `json:"cpu,omitempty"`
	CPUTotal *cpuWindow `json:"cpu_total,omitempty"`

	Status *statusResult `json:"status,omitempty"`

	// History is what -history measured before the run.
	History *historyResult `json:"history,omitempty"`
	// Profile is the file of the CPU profile recorded during the run.
	Profile string `json:"profile,omitempty"`

	Errors          []string `json:"errors,omitempty"`
	MissingExamples []string `json:"missing_examples,omitempty"`
}

// latency summarises samples in milliseconds.
type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summarize sorts samples and takes exact percentiles from them.
func summarize(samples []time.Duration) latency {
	if len(samples) == 0 {
		return latency{}
	}
	slices.Sort(samples)
	return latency{
		N:   len(samples),
		P50: millis(percentile(samples, 50)),
		P90: millis(percentile(samples, 90)),
		P99: millis(percentile(samples, 99)),
		Max: millis(samples[len(samples)-1]),
	}
}

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample that at least p% of the samples are less than or equal to.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// perSecond is n over seconds, 0 when no time passed.
func perSecond(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// printHuman writes the result as lines for people.
func (r *result) printHuman(w io.Writer) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-24s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	rate := "as fast as possible"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g events/s (open loop)", r.Rate)
	}
	fmt.Fprintln(w)
	p("run", "shape %s, %d endpoint(s), %s protocol, %d in flight, %s, %d-byte payloads, project %s",
		r.Shape, r.Endpoints, r.Protocol, r.Concurrency, rate, r.PayloadBytes, r.ProjectID)
	p("events sent", "%d of %d (%d ingest errors)", r.EventsSent, r.EventsPlanned, r.IngestErrors)
	p("ingest throughput", "%.1f requests/s over %.2f s", r.IngestPerSecond, r.IngestSeconds)
	p("ingest call latency", "%s", r.IngestLatency)
	if r.Rate > 0 {
		p("schedule lag", "max %.1f ms (a call started this late: all %d slots were busy)", r.ScheduleLagMaxMillis, r.Concurrency)
	}
	p("deliveries received", "%d of %d expected (missing %d, duplicates %d, unexpected %d)",
		r.DeliveriesReceived, r.ExpectedDeliveries, r.Missing, r.Duplicates, r.Unexpected)
	p("delivery throughput", "%.1f deliveries/s (first send to last receipt, %.2f s)", r.DeliveriesPerSecond, r.DeliverySeconds)
	p("ingest→receipt latency", "%s", r.DeliveryLatency)
	for _, c := range []struct {
		label string
		w     *cpuWindow
	}{{"CPU, delivery phase", r.CPU}, {"CPU, whole run", r.CPUTotal}} {
		if c.w == nil {
			continue
		}
		p(c.label, "%.2f s wall, machine %.0f%% busy (%d CPUs)", c.w.WallSeconds, c.w.MachineBusyPct, c.w.CPUs)
		for _, u := range c.w.Procs {
			if u.Gone {
				p("  "+u.Name, "exited before the end of the window")
				continue
			}
			line := fmt.Sprintf("%.2f CPU s = %.0f%% of one core, %.0f%% of the machine", u.Seconds, u.CorePct, u.MachinePct)
			if r.DeliveriesReceived > 0 {
				line += fmt.Sprintf(", %.2f ms per delivery", 1000*u.Seconds/float64(r.DeliveriesReceived))
			}
			p("  "+u.Name, "%s", line)
		}
		p("  everything else", "%.2f CPU s (other workloads on the machine, the kernel)", c.w.OtherSeconds)
	}
	if s := r.Status; s != nil {
		counts := make([]string, 0, len(s.Counts))
		for name, n := range s.Counts {
			counts = append(counts, fmt.Sprintf("%s %d", name, n))
		}
		slices.Sort(counts)
		if s.Complete {
			p("status SUCCESS", "%d of %d; lag %.2f s after the last receipt (within %.2f s)", s.Success, s.Expected, s.LagSeconds, s.ResolutionSeconds)
		} else {
			p("status SUCCESS", "%d of %d when the wait ended: INCOMPLETE", s.Success, s.Expected)
		}
		polls := fmt.Sprintf("%d CountDeliveries calls, %.1f s in all, the last %.0f ms", s.Polls, s.CallSeconds, s.CallMillis)
		if !s.Complete {
			polls += fmt.Sprintf("; SUCCESS grew %.1f/s while polling", s.SuccessPerSecond)
		}
		p("status polls", "%s", polls)
		p("status counts", "%s", strings.Join(counts, ", "))
		if s.Error != "" {
			p("status error", "%s", s.Error)
		}
	}
	for _, e := range r.Errors {
		p("error", "%s", e)
	}
	for _, m := range r.MissingExamples {
		p("missing", "%s", m)
	}
}

func (l latency) String() string {
	if l.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)", l.P50, l.P90, l.P99, l.Max, l.N)
}

// printJSON writes the result as one line of JSON.
func (r *result) printJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
