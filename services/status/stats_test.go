package status

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/hookmesh/hookmesh/gen/hookmesh/bus/v1"
	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// bucketSummary writes a bucket's statuses and attempts as text.
func bucketSummary(b *statusv1.StatsBucket) string {
	var parts []string
	for _, c := range b.GetStatuses() {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(c.GetStatus().String(), "DELIVERY_STATUS_"), c.GetCount()))
	}
	return fmt.Sprintf("%s attempts=%d", strings.Join(parts, ","), b.GetAttempts())
}

// TestDeliveryStats applies the lives of deliveries of two endpoints, one
// change at a time and then all replayed at once, and checks the
// statistics by project, by endpoint and through a portal token, the
// health of each endpoint, and the refusal of bad windows, on both stores.
func TestDeliveryStats(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, kind string) {
		s := testService(t, kind)
		dial := servePortal(t, s, true)
		ctx := context.Background()
		base := statMinute(time.Now()).Add(-40 * time.Minute)
		mk := func(endpoint string) delivery {
			return delivery{id: ids.New("dlv"), project: projectA, event: ids.New("evt"), endpoint: endpoint, eventType: "t", created: base}
		}
		// Attempt 1 ends in minute 1 of the window, attempt 2 in minute 2.
		ok0, discarded0, failing1, ok1 := mk("ep_0"), mk("ep_0"), mk("ep_1"), mk("ep_1")
		var all []*busv1.StateChange
		for _, c := range []*busv1.StateChange{
			ok0.change(scheduled, 1), ok0.change(processing, 1), ok0.change(success, 1),
			discarded0.change(discarded, 1),
			failing1.change(scheduled, 1), failing1.change(processing, 1), failing1.change(retry, 1),
			failing1.change(scheduled, 2), failing1.change(processing, 2), failing1.change(failed, 2),
			ok1.change(success, 1),
		} {
			if err := s.Apply(ctx, []*busv1.StateChange{c}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			all = append(all, c)
		}
		// A batch that holds a retry and the next attempt's success counts
		// both outcomes, though only the success is stored.
		coalesced := mk("ep_3")
		batch := []*busv1.StateChange{coalesced.change(retry, 1), coalesced.change(scheduled, 2),
			coalesced.change(processing, 2), coalesced.change(success, 2)}
		if err := s.Apply(ctx, batch); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		all = append(all, batch...)
		// A replay counts nothing again.
		if err := s.Apply(ctx, all); err != nil {
			t.Fatalf("replay: %v", err)
		}

		stats := func(key, endpoint string, bucket time.Duration) ([]*statusv1.StatsBucket, error) {
			resp, err := dial(key).GetDeliveryStats(ctx, connect.NewRequest(&statusv1.GetDeliveryStatsRequest{
				ProjectId: projectA, EndpointId: endpoint,
				StartTime: timestamppb.New(base), EndTime: timestamppb.New(base.Add(10 * time.Minute)),
				Bucket: durationpb.New(bucket),
			}))
			if err != nil {
				return nil, err
			}
			return resp.Msg.GetBuckets(), nil
		}
		check := func(name, key, endpoint string, bucket time.Duration, want map[int]string) {
			t.Helper()
			got, err := stats(key, endpoint, bucket)
			if err != nil {
				t.Fatalf("%s: GetDeliveryStats: %v", name, err)
			}
			if n := int(10 * time.Minute / bucket); len(got) != n {
				t.Fatalf("%s: %d buckets, want %d", name, len(got), n)
			}
			for i, b := range got {
				if w := cmp.Or(want[i], " attempts=0"); bucketSummary(b) != w {
					t.Errorf("%s: bucket %d = %q, want %q", name, i, bucketSummary(b), w)
				}
				if !b.GetStartTime().AsTime().Equal(base.Add(time.Duration(i) * bucket)) {
					t.Errorf("%s: bucket %d starts at %v", name, i, b.GetStartTime().AsTime())
				}
				if b.GetAttempts() > 0 {
					// Latencies of 13 and 14 ms: the histogram's 10-25 ms bucket.
					for _, v := range []uint32{b.GetLatencyMeanMs(), b.GetLatencyP50Ms(), b.GetLatencyP95Ms(), b.GetLatencyP99Ms()} {
						if v < 10 || v > 25 {
							t.Errorf("%s: bucket %d latencies %v", name, i, b)
						}
					}
				}
			}
		}
		check("project", keyA, "", time.Minute, map[int]string{
			1: "SUCCESS=2,RETRY=2,DISCARDED=1 attempts=4",
			2: "SUCCESS=1,FAILED=1 attempts=2",
		})
		check("project in 5 minutes", keyA, "", 5*time.Minute, map[int]string{0: "SUCCESS=3,RETRY=2,FAILED=1,DISCARDED=1 attempts=6"})
		check("ep_3", keyA, "ep_3", time.Minute, map[int]string{1: "RETRY=1 attempts=1", 2: "SUCCESS=1 attempts=1"})
		check("ep_0", keyA, "ep_0", time.Minute, map[int]string{1: "SUCCESS=1,DISCARDED=1 attempts=1"})
		check("ep_1", adminKey, "ep_1", time.Minute, map[int]string{1: "SUCCESS=1,RETRY=1 attempts=2", 2: "FAILED=1 attempts=1"})
		// A portal token sees its owner's endpoints (ep_0) only.
		check("portal", tokenAcme, "", time.Minute, map[int]string{1: "SUCCESS=1,DISCARDED=1 attempts=1"})
		check("portal of an owner without endpoints", tokenNobody, "", time.Minute, nil)
		if _, err := stats(tokenAcme, "ep_1", time.Minute); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("portal stats of another owner's endpoint: %v", err)
		}

		// Bad windows name what is wrong.
		for _, bad := range []struct {
			req   *statusv1.GetDeliveryStatsRequest
			field string
		}{
			{&statusv1.GetDeliveryStatsRequest{ProjectId: projectA, Bucket: durationpb.New(7 * time.Minute)}, "bucket"},
			{&statusv1.GetDeliveryStatsRequest{ProjectId: projectA, StartTime: timestamppb.New(base.Add(-48 * time.Hour)), Bucket: durationpb.New(time.Minute)}, "bucket"},
			{&statusv1.GetDeliveryStatsRequest{ProjectId: projectA, StartTime: timestamppb.New(base), EndTime: timestamppb.New(base.Add(-time.Hour))}, "end_time"},
			{&statusv1.GetDeliveryStatsRequest{ProjectId: projectA, StartTime: timestamppb.New(base.Add(-600 * 24 * time.Hour))}, "start_time"},
		} {
			_, err := dial(keyA).GetDeliveryStats(ctx, connect.NewRequest(bad.req))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), bad.field) {
				t.Errorf("GetDeliveryStats(%v) = %v, want InvalidArgument naming %s", bad.req, err, bad.field)
			}
		}
		// Without a bucket, the window of the last day gets 5-minute ones.
		resp, err := dial(keyA).GetDeliveryStats(ctx, connect.NewRequest(&statusv1.GetDeliveryStatsRequest{
			ProjectId: projectA, StartTime: timestamppb.New(time.Now().Add(-24 * time.Hour))}))
		if err != nil || resp.Msg.GetBucket().AsDuration() != 5*time.Minute || len(resp.Msg.GetBuckets()) > maxStatsBuckets {
			t.Fatalf("default bucket of a day: %v, %v", resp, err)
		}

		// Health.
		health := func(key, endpoint string) (*statusv1.GetEndpointHealthResponse, error) {
			resp, err := dial(key).GetEndpointHealth(ctx, connect.NewRequest(&statusv1.GetEndpointHealthRequest{ProjectId: projectA, EndpointId: endpoint}))
			if err != nil {
				return nil, err
			}
			return resp.Msg, nil
		}
		h1, err := health(keyA, "ep_1")
		if err != nil {
			t.Fatalf("GetEndpointHealth: %v", err)
		}
		failedAt := failing1.change(failed, 2).GetTime().AsTime()
		if h1.GetRecentSuccesses() != 1 || h1.GetRecentFailures() != 2 ||
			!h1.GetLastFailureTime().AsTime().Equal(failedAt) || h1.GetLastError() != "endpoint answered 503 on attempt 2" ||
			h1.GetLastFailureStatusCode() != 503 || h1.GetLastSuccessTime() == nil {
			t.Fatalf("health of ep_1 = %v", h1)
		}
		h0, err := health(tokenAcme, "ep_0")
		if err != nil || h0.GetRecentSuccesses() != 1 || h0.GetRecentFailures() != 0 || h0.GetLastFailureTime() != nil ||
			!h0.GetLastSuccessTime().AsTime().Equal(ok0.change(success, 1).GetTime().AsTime()) {
			t.Fatalf("health of ep_0 through the portal = %v, %v", h0, err)
		}
		if _, err := health(tokenAcme, "ep_1"); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("portal health of another owner's endpoint: %v", err)
		}
		if _, err := health(keyA, ""); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("health without an endpoint: %v", err)
		}
	})
}

// TestPercentile estimates quantiles within the histogram's buckets.
func TestPercentile(t *testing.T) {
	hist := make([]uint64, len(latencyBounds)+1)
	hist[latencyBucket(7)] = 50   // 5-10 ms
	hist[latencyBucket(300)] = 50 // 250-500 ms
	hist[len(latencyBounds)] = 0  // none above a minute
	if p := percentile(hist, 100, 0.5); p < 5 || p > 10 {
		t.Errorf("p50 = %d, want within 5-10", p)
	}
	if p := percentile(hist, 100, 0.99); p < 250 || p > 500 {
		t.Errorf("p99 = %d, want within 250-500", p)
	}
	if latencyBucket(0) != 0 || latencyBucket(120_000) != int16(len(latencyBounds)) {
		t.Error("latencyBucket's ends")
	}
}
