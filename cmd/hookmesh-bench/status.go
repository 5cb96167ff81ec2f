package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/gen/hookmesh/status/v1/statusv1connect"
	"github.com/hookmesh/hookmesh/internal/auth"
)

// statusPoll is the shortest pause between two CountDeliveries calls. The
// pause is also at least statusPollFactor times the last call: on FerretDB a
// count reads every delivery of the project, and polling flat out would
// slow down the very status writes it waits for. The lag is then known to
// within about (1+statusPollFactor) calls.
const (
	statusPoll       = 250 * time.Millisecond
	statusPollFactor = 2
)

// statusResult is what the status service reported.
type statusResult struct {
	Expected int               `json:"expected"`
	Success  uint64            `json:"success"`
	Counts   map[string]uint64 `json:"counts"`
	Complete bool              `json:"complete"`
	// LagSeconds is from the last delivery received to the end of the first
	// CountDeliveries call that counted every delivery as SUCCESS: an upper
	// bound, within ResolutionSeconds of the truth.
	LagSeconds        float64 `json:"lag_seconds,omitempty"`
	ResolutionSeconds float64 `json:"resolution_seconds,omitempty"`
	Polls             int     `json:"polls"`
	// CallMillis is how long the last CountDeliveries call took, and
	// CallSeconds all of them together.
	CallMillis  float64 `json:"call_ms"`
	CallSeconds float64 `json:"call_seconds"`
	// SuccessPerSecond is how fast SUCCESS grew between the first poll and
	// the last (the status pipeline's pace while it catches up); set only
	// when the wait ended before every delivery was SUCCESS.
	SuccessPerSecond float64 `json:"success_per_second,omitempty"`
	Error            string  `json:"error,omitempty"`
}

func newStatusClient(cfg *config, p *project) statusv1connect.StatusServiceClient {
	return statusv1connect.NewStatusServiceClient(&http.Client{Timeout: time.Minute}, cfg.statusURL,
		connect.WithInterceptors(auth.BearerInterceptor(p.key)))
}

// waitStatus asks the status service how many of the project's deliveries
// are SUCCESS until that is expected, or cfg.statusTimeout has passed. since
// is the time of the last delivery received.
func waitStatus(ctx context.Context, cfg *config, client statusv1connect.StatusServiceClient, p *project, expected int, since time.Time, logf func(string, ...any)) statusResult {
	r := statusResult{Expected: expected}
	deadline := time.Now().Add(cfg.statusTimeout)
	prevStart := since
	var firstAt, logged time.Time
	var firstSuccess uint64
	for {
		start := time.Now()
		resp, err := client.CountDeliveries(ctx, connect.NewRequest(&statusv1.CountDeliveriesRequest{ProjectId: p.id}))
		end := time.Now()
		r.Polls++
		r.CallMillis = millis(end.Sub(start))
		r.CallSeconds += end.Sub(start).Seconds()
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Error = ""
			r.Counts = make(map[string]uint64)
			r.Success = 0
			for _, c := range resp.Msg.GetCounts() {
				if c.GetCount() > 0 {
					r.Counts[statusName(c.GetStatus())] = c.GetCount()
				}
				if c.GetStatus() == statusv1.DeliveryStatus_DELIVERY_STATUS_SUCCESS {
					r.Success = c.GetCount()
				}
			}
			if firstAt.IsZero() {
				firstAt, firstSuccess = end, r.Success
			} else if secs := end.Sub(firstAt).Seconds(); secs > 0 {
				r.SuccessPerSecond = float64(r.Success-min(firstSuccess, r.Success)) / secs
			}
			if time.Since(logged) >= 10*time.Second {
				logf("status: %d of %d SUCCESS", r.Success, expected)
				logged = time.Now()
			}
			if r.Success >= uint64(expected) {
				r.Complete = true
				r.SuccessPerSecond = 0
				r.LagSeconds = max(end.Sub(since), 0).Seconds()
				// The previous call, which still fell short, started
				// before the last SUCCESS was written.
				from := since
				if prevStart.After(since) {
					from = prevStart
				}
				r.ResolutionSeconds = max(end.Sub(from), 0).Seconds()
				return r
			}
		}
		prevStart = start
		if time.Now().After(deadline) || ctx.Err() != nil {
			return r
		}
		select {
		case <-time.After(max(statusPoll, statusPollFactor*end.Sub(start))):
		case <-ctx.Done():
			return r
		}
	}
}

func statusName(s statusv1.DeliveryStatus) string {
	return strings.TrimPrefix(s.String(), "DELIVERY_STATUS_")
}

// describeMissing says, for a few deliveries that never arrived, what the
// status service knows of them.
func describeMissing(ctx context.Context, client statusv1connect.StatusServiceClient, p *project, missing []missingDelivery) []string {
	var out []string
	for _, m := range missing {
		endpointID := ""
		if m.endpoint >= 0 && m.endpoint < len(p.endpointIDs) {
			endpointID = p.endpointIDs[m.endpoint]
		}
		resp, err := client.ListDeliveries(ctx, connect.NewRequest(&statusv1.ListDeliveriesRequest{
			ProjectId: p.id, EventId: m.eventID, EndpointId: endpointID}))
		line := fmt.Sprintf("event %s to endpoint %s: ", m.eventID, endpointID)
		switch {
		case err != nil:
			line += "status service: " + err.Error()
		case len(resp.Msg.GetDeliveries()) == 0:
			line += "the status service has no delivery for it"
		default:
			d := resp.Msg.GetDeliveries()[0]
			line += fmt.Sprintf("delivery %s is %s after %d attempt(s)", d.GetId(), statusName(d.GetStatus()), d.GetAttempts())
			if d.GetLastError() != "" {
				line += ", last error: " + d.GetLastError()
			}
		}
		out = append(out, line)
	}
	return out
}
