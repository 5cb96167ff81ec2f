package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 99, 99 * time.Millisecond},
		{"p90 of 100 is the 90th", ms(hundred...), 90, 90 * time.Millisecond},
		{"p99 of 10 is the largest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p100 is the largest", ms(3, 5), 100, 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tc.samples, tc.p); got != tc.want {
				t.Fatalf("percentile(%v, %g) = %v, want %v", tc.samples, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsSamples(t *testing.T) {
	t.Parallel()
	got := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	want := latency{N: 3, P50: 2, P90: 3, P99: 3, Max: 3}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
}

func TestPayloadIsValidJSONOfTheAskedSize(t *testing.T) {
	t.Parallel()
	sent := time.Unix(1_700_000_000, 123)
	for _, size := range []int{minPayloadBytes, 300, 4096} {
		p := payload(2147483647, sent, size)
		if len(p) != size && size > minPayloadBytes {
			t.Errorf("payload of %d bytes: got %d", size, len(p))
		}
		var v struct {
			Seq  int   `json:"seq"`
			Sent int64 `json:"sent_unix_nano"`
		}
		if err := json.Unmarshal([]byte(p), &v); err != nil || v.Seq != 2147483647 || v.Sent != sent.UnixNano() {
			t.Errorf("payload %q: %+v %v", p, v, err)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "8896 (post gres) (x) S 2200 8896 8896 0 -1 4194368 4110 0 0 0 174 140 0 0 20 0 1 0 142346 232722432"
	got, err := parseProcStat(line)
	if err != nil || got != 3.14 {
		t.Fatalf("parseProcStat = %v, %v; want 3.14 s (314 ticks)", got, err)
	}
	if _, err := parseProcStat("garbage"); err == nil {
		t.Fatal("parseProcStat accepted garbage")
	}
}

func TestParseMachineStat(t *testing.T) {
	t.Parallel()
	busy, total, err := parseMachineStat("cpu  100 10 50 800 40 0 0 0 0 0\ncpu0 1 2 3 4\n")
	if err != nil || busy != 1.6 || total != 10 {
		t.Fatalf("parseMachineStat = %v, %v, %v; want 1.6 busy of 10", busy, total, err)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	calls := []call{
		{eventID: "e0", intended: t0, start: t0, end: t0},
		{eventID: "e1", intended: t0, start: t0, end: t0},
		{intended: t0, start: t0, end: t0, err: errors.New("refused")},
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	t.Run("fanout", func(t *testing.T) {
		t.Parallel()
		cfg := &config{shape: shapeFanout, endpoints: 2}
		got := match(cfg, calls, []receipt{
			{eventID: "e0", endpoint: 0, at: at(10)},
			{eventID: "e0", endpoint: 1, at: at(30)},
			{eventID: "e0", endpoint: 1, at: at(40)}, // same target, another webhook-id
			{eventID: "e1", endpoint: 1, at: at(20)},
			{eventID: "e1", endpoint: 5, at: at(20)}, // no such endpoint
			{eventID: "nope", endpoint: 0, at: at(20)},
		})
		if got.expected != 4 || got.matched != 3 || got.redelivered != 1 || got.unexpected != 2 {
			t.Fatalf("tally = %+v", got)
		}
		if len(got.missing) != 1 || got.missing[0] != (missingDelivery{eventID: "e1", endpoint: 0}) {
			t.Fatalf("missing = %v, want e1 to endpoint 0", got.missing)
		}
		if !got.lastReceipt.Equal(at(30)) {
			t.Fatalf("last receipt = %v, want %v", got.lastReceipt, at(30))
		}
	})
	t.Run("single round-robin", func(t *testing.T) {
		t.Parallel()
		cfg := &config{shape: shapeSingle, endpoints: 2}
		got := match(cfg, calls, []receipt{
			{eventID: "e0", endpoint: 0, at: at(10)},
			{eventID: "e1", endpoint: 0, at: at(10)}, // e1 goes to endpoint 1
		})
		if got.expected != 2 || got.matched != 1 || got.unexpected != 1 || len(got.missing) != 1 || got.missing[0].endpoint != 1 {
			t.Fatalf("tally = %+v", got)
		}
	})
}

func TestParseWatch(t *testing.T) {
	t.Parallel()
	got, err := parseWatch("rabbitmq=3004, postgres=comm:postgres,pg-bench=hookmesh_bench")
	want := []watched{{name: "rabbitmq", pid: 3004}, {name: "postgres", comm: "postgres"}, {name: "pg-bench", match: "hookmesh_bench"}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("parseWatch = %+v, %v; want %+v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"postgres=comm:", "x=-1", "=1", "nameonly"} {
		if _, err := parseWatch(bad); err == nil {
			t.Errorf("parseWatch(%q) accepted it", bad)
		}
	}
}

func TestSuiteTable(t *testing.T) {
	t.Parallel()
	r := &result{
		ExpectedDeliveries: 6000, DeliveriesReceived: 6000, DeliveriesPerSecond: 199.6,
		DeliveryLatency: latency{N: 6000, P50: 3.64, P90: 4.71, P99: 8.93},
		CPU: &cpuWindow{MachineBusyPct: 56.4, Procs: []cpuUse{
			{Name: "hookmesh", Seconds: 10.32}, {Name: "rabbitmq", Seconds: 14.4}, {Name: "postgres", Gone: true}}},
		Status: &statusResult{Complete: true, LagSeconds: 0.776},
	}
	table := suiteTable([]suiteResult{{Name: "steady", History: 1234567, Result: r}})
	// No FerretDB measured: a dash; PostgreSQL gone: said so.
	want := "| steady | 1,234,567 | 6,000/6,000 | 200 | 3.6 | 4.7 | 8.9 | 1.72 | 2.40 | — | exited | 56 % | 0.78 s |\n"
	if !strings.HasSuffix(table, want) {
		t.Fatalf("table:\n%s\nwant its row:\n%s", table, want)
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 60000: "60,000", 1234567: "1,234,567", -2000: "-2,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
