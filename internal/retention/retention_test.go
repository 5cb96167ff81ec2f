package retention

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

type retentions map[string]int

func (r retentions) ListRetentions(context.Context) (map[string]int, error) { return r, nil }

// rows is a store of rows per project, each with an age in days.
type rows struct {
	ages  map[string][]int
	calls int
	fail  string
}

func (r *rows) PruneBatch(_ context.Context, projectID string, cutoff time.Time, limit int) (Counts, bool, error) {
	r.calls++
	if projectID == r.fail {
		return nil, false, errors.New("store away")
	}
	days := int(time.Since(cutoff).Hours()/24 + 0.5)
	var kept []int
	n := 0
	for _, age := range r.ages[projectID] {
		if age > days && n < limit {
			n++
			continue
		}
		kept = append(kept, age)
	}
	r.ages[projectID] = kept
	return Counts{KindDeliveries: int64(n)}, n == limit, nil
}

// TestPrunerRunOnce checks the loop around the stores: each project's own
// cutoff, batches until one comes back short, a failing project not
// stopping the others, and the metrics.
func TestPrunerRunOnce(t *testing.T) {
	t.Parallel()
	st := &rows{ages: map[string][]int{
		"prj_a": {40, 40, 40, 40, 40, 10},
		"prj_b": {40, 10},
		"prj_c": {40},
	}, fail: "prj_c"}
	reader := sdkmetric.NewManualReader()
	p, err := New(Config{BatchSize: 2, Pause: time.Millisecond}, "status", retentions{"prj_a": 30, "prj_b": 60, "prj_c": 30}, st,
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.RunOnce(context.Background())
	if err == nil {
		t.Error("RunOnce hid the failure of prj_c")
	}
	if got[KindDeliveries] != 5 || len(st.ages["prj_a"]) != 1 || len(st.ages["prj_b"]) != 2 {
		t.Errorf("pruned %v, left %v; want the 5 rows of prj_a older than 30 days", got, st.ages)
	}
	// prj_a: 2, 2, 1 (short: done); prj_b: 0; prj_c: the failure.
	if st.calls != 5 {
		t.Errorf("%d batches, want 5", st.calls)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			seen[m.Name] = true
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "hookmesh.retention.pruned" {
				var total int64
				for _, dp := range sum.DataPoints {
					total += dp.Value
				}
				if total != 5 {
					t.Errorf("hookmesh.retention.pruned = %d, want 5", total)
				}
			}
		}
	}
	for _, name := range []string{"hookmesh.retention.pruned", "hookmesh.retention.runs", "hookmesh.retention.last_run.duration"} {
		if !seen[name] {
			t.Errorf("metric %s not recorded", name)
		}
	}
}
