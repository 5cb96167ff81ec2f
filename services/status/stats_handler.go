package status

import (
	"context"
	"math"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/apierr"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// statsBuckets are the bucket widths GetDeliveryStats accepts, narrowest
// first.
var statsBuckets = []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour}

// maxStatsBuckets bounds the buckets of one GetDeliveryStats answer.
const maxStatsBuckets = 500

// healthWindow is the window of GetEndpointHealth's recent outcomes.
const healthWindow = 24 * time.Hour

// outcomeStatuses are the statuses the statistics count, in enum order.
var outcomeStatuses = []statusv1.DeliveryStatus{
	statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS,
	statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY,
	statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED,
	statusv1.DeliveryStatus_DELIVERY_STATUS_DISCARDED,
}

// ceilMinute rounds t up to the minute.
func ceilMinute(t time.Time) time.Time {
	m := statMinute(t)
	if m.Before(t) {
		m = m.Add(time.Minute)
	}
	return m
}

// GetDeliveryStats returns the statistics of a project or endpoint per
// bucket, from the counters the store keeps per minute.
func (h *handler) GetDeliveryStats(ctx context.Context, req *connect.Request[statusv1.GetDeliveryStatsRequest]) (*connect.Response[statusv1.GetDeliveryStatsResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	q, err := statsWindow(m, time.Now())
	if err != nil {
		return nil, err
	}
	q.projectID, q.endpointID = m.GetProjectId(), m.GetEndpointId()
	buckets, err := h.stats(ctx, q)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&statusv1.GetDeliveryStatsResponse{
		Buckets:   buckets,
		Bucket:    durationpb.New(q.bucket),
		StartTime: timestamppb.New(q.start),
		EndTime:   timestamppb.New(q.end),
	}), nil
}

// statsWindow checks a request's window and bucket: start rounded down and
// end rounded up to the minute, a bucket among statsBuckets, at most
// maxStatsBuckets of them.
func statsWindow(m *statusv1.GetDeliveryStatsRequest, now time.Time) (*statsQuery, error) {
	q := &statsQuery{end: ceilMinute(now)}
	if e := m.GetEndTime(); e != nil {
		if err := e.CheckValid(); err != nil {
			return nil, apierr.Invalid("end_time", "%v", err)
		}
		q.end = ceilMinute(e.AsTime())
	}
	q.start = q.end.Add(-time.Hour)
	if s := m.GetStartTime(); s != nil {
		if err := s.CheckValid(); err != nil {
			return nil, apierr.Invalid("start_time", "%v", err)
		}
		q.start = statMinute(s.AsTime())
	}
	if !q.start.Before(q.end) {
		return nil, apierr.Invalid("end_time", "must be after start_time (%s is not after %s)",
			q.end.Format(time.RFC3339), q.start.Format(time.RFC3339))
	}
	count := func(b time.Duration) int64 { return int64((q.end.Sub(q.start) + b - 1) / b) }
	if b := m.GetBucket(); b != nil {
		if err := b.CheckValid(); err != nil {
			return nil, apierr.Invalid("bucket", "%v", err)
		}
		q.bucket = b.AsDuration()
		ok := false
		for _, allowed := range statsBuckets {
			ok = ok || q.bucket == allowed
		}
		if !ok {
			return nil, apierr.Invalid("bucket", "%s is not a bucket width: use 60s, 300s, 3600s or 86400s (1m, 5m, 1h or 1d)", q.bucket)
		}
		if n := count(q.bucket); n > maxStatsBuckets {
			return nil, apierr.Invalid("bucket", "%s makes %d buckets of the window; at most %d are allowed: use a wider bucket or a shorter window", q.bucket, n, maxStatsBuckets)
		}
		return q, nil
	}
	for _, b := range statsBuckets {
		if count(b) <= maxStatsBuckets {
			q.bucket = b
			return q, nil
		}
	}
	return nil, apierr.Invalid("start_time", "the window from %s to %s is longer than %d days", q.start.Format(time.RFC3339), q.end.Format(time.RFC3339), maxStatsBuckets)
}

// stats reads q's statistics within the caller's scope and returns every
// bucket of the window.
func (h *handler) stats(ctx context.Context, q *statsQuery) ([]*statusv1.StatsBucket, error) {
	buckets := emptyBuckets(q)
	sc, err := h.scope(ctx, q.projectID)
	if err != nil {
		return nil, err
	}
	dq := &deliveryQuery{projectID: q.projectID, endpointID: q.endpointID}
	ok, err := sc.narrow(dq)
	if err != nil {
		return nil, err
	}
	if !ok {
		return buckets, nil
	}
	q.endpointIDs = dq.endpointIDs
	rows, err := h.store.stats(ctx, q)
	if err != nil {
		return nil, err
	}
	counts := statusCounts(rows.statuses, len(buckets))
	hists, sums := latencyHistograms(rows.latencies, len(buckets))
	for i, b := range buckets {
		fillBucket(b, counts[i], hists[i], sums[i])
	}
	return buckets, nil
}

// emptyBuckets are the buckets of q's window, each with its start time and
// nothing counted.
func emptyBuckets(q *statsQuery) []*statusv1.StatsBucket {
	n := int((q.end.Sub(q.start) + q.bucket - 1) / q.bucket)
	buckets := make([]*statusv1.StatsBucket, n)
	for i := range buckets {
		buckets[i] = &statusv1.StatsBucket{StartTime: timestamppb.New(q.start.Add(time.Duration(i) * q.bucket))}
	}
	return buckets
}

// statusCounts sums the delivery counters rows per bucket and status, for
// n buckets; a row outside them, or counting nothing, is left out.
func statusCounts(rows []statusRow, n int) []map[statusv1.DeliveryStatus]uint64 {
	counts := make([]map[statusv1.DeliveryStatus]uint64, n)
	for _, r := range rows {
		if r.bucket < 0 || r.bucket >= int64(n) || r.n <= 0 {
			continue
		}
		if counts[r.bucket] == nil {
			counts[r.bucket] = map[statusv1.DeliveryStatus]uint64{}
		}
		counts[r.bucket][statusv1.DeliveryStatus(r.status)] += uint64(r.n)
	}
	return counts
}

// latencyHistograms sums the attempt counters rows per bucket into a
// histogram over latencyBounds and a sum of latencies, for n buckets; a
// row outside them or the histogram, or counting nothing, is left out.
func latencyHistograms(rows []latencyRow, n int) (hists [][]uint64, sums []int64) {
	hists = make([][]uint64, n)
	sums = make([]int64, n)
	for _, r := range rows {
		if r.bucket < 0 || r.bucket >= int64(n) || r.n <= 0 || r.latency < 0 || int(r.latency) > len(latencyBounds) {
			continue
		}
		if hists[r.bucket] == nil {
			hists[r.bucket] = make([]uint64, len(latencyBounds)+1)
		}
		hists[r.bucket][r.latency] += uint64(r.n)
		sums[r.bucket] += r.sumMS
	}
	return hists, sums
}

// fillBucket sets b's counts per status, in enum order, and its attempts
// and latencies from the histogram hist and the latencies' sum sumMS.
func fillBucket(b *statusv1.StatsBucket, counts map[statusv1.DeliveryStatus]uint64, hist []uint64, sumMS int64) {
	for _, st := range outcomeStatuses {
		if c := counts[st]; c > 0 {
			b.Statuses = append(b.Statuses, &statusv1.StatusCount{Status: st, Count: c})
		}
	}
	for _, c := range hist {
		b.Attempts += c
	}
	if b.Attempts > 0 {
		b.LatencyMeanMs = clampUint32(sumMS / int64(b.Attempts))
		b.LatencyP50Ms = percentile(hist, b.Attempts, 0.50)
		b.LatencyP95Ms = percentile(hist, b.Attempts, 0.95)
		b.LatencyP99Ms = percentile(hist, b.Attempts, 0.99)
	}
}

// percentile estimates the p-quantile of a latency histogram of total
// attempts, interpolating within the bucket it falls in (the last bucket,
// unbounded, is taken as twice as wide as its lower bound).
func percentile(hist []uint64, total uint64, p float64) uint32 {
	rank := p * float64(total)
	var cum float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo := 0.0
			if i > 0 {
				lo = float64(latencyBounds[i-1])
			}
			hi := 2 * lo
			if i < len(latencyBounds) {
				hi = float64(latencyBounds[i])
			}
			v := lo + (rank-cum)/float64(c)*(hi-lo)
			return uint32(math.Round(v))
		}
		cum += float64(c)
	}
	return 0
}

// GetEndpointHealth summarizes an endpoint's last 24 hours from the
// statistics, and finds its latest success and failure by the
// (project_id, endpoint_id, status, create_time) index.
func (h *handler) GetEndpointHealth(ctx context.Context, req *connect.Request[statusv1.GetEndpointHealthRequest]) (*connect.Response[statusv1.GetEndpointHealthResponse], error) {
	m := req.Msg
	if err := auth.AuthorizeProject(ctx, m.GetProjectId()); err != nil {
		return nil, err
	}
	if m.GetEndpointId() == "" {
		return nil, apierr.Invalid("endpoint_id", "must not be empty")
	}
	sc, err := h.scope(ctx, m.GetProjectId())
	if err != nil {
		return nil, err
	}
	if !sc.has(m.GetEndpointId()) {
		return nil, apierr.NotFound("endpoint", m.GetEndpointId(), m.GetProjectId())
	}
	end := ceilMinute(time.Now())
	buckets, err := h.stats(ctx, &statsQuery{projectID: m.GetProjectId(), endpointID: m.GetEndpointId(),
		start: end.Add(-healthWindow), end: end, bucket: healthWindow})
	if err != nil {
		return nil, err
	}
	out := &statusv1.GetEndpointHealthResponse{}
	addRecentHealth(out, buckets)
	ok, err := h.latestDelivery(ctx, m.GetProjectId(), m.GetEndpointId(), statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS)
	if err != nil {
		return nil, err
	}
	if ok != nil {
		out.LastSuccessTime = timestamppb.New(ok.UpdateTime)
	}
	bad, err := h.latestDelivery(ctx, m.GetProjectId(), m.GetEndpointId(), statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED)
	if err != nil {
		return nil, err
	}
	if bad != nil {
		out.LastFailureTime = timestamppb.New(bad.UpdateTime)
		out.LastError = bad.LastError
		out.LastFailureStatusCode = bad.LastStatusCode
	}
	return connect.NewResponse(out), nil
}

// addRecentHealth adds the status counts of buckets to out's recent counts,
// successes and failures.
func addRecentHealth(out *statusv1.GetEndpointHealthResponse, buckets []*statusv1.StatsBucket) {
	for _, b := range buckets {
		for _, c := range b.Statuses {
			out.Recent = append(out.Recent, c)
			switch c.Status {
			case statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS:
				out.RecentSuccesses += c.Count
			case statusv1.DeliveryStatus_DELIVERY_STATUS_RETRY, statusv1.DeliveryStatus_DELIVERY_STATUS_FAILED:
				out.RecentFailures += c.Count
			}
		}
	}
}

// latestDelivery returns the latest delivery of the endpoint in one of
// statuses sts, or nil when it has none.
func (h *handler) latestDelivery(ctx context.Context, projectID, endpointID string, sts ...statusv1.DeliveryStatus) (*deliveryDoc, error) {
	docs, err := h.store.listDeliveries(ctx, &deliveryQuery{projectID: projectID, endpointID: endpointID, statuses: sts, limit: 1})
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return &docs[0], nil
}
