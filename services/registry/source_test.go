package registry

import (
	"context"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/ids"
)

// queueName returns a queue name no other test uses.
func queueName(t *testing.T) string {
	return "orders-" + strings.ToLower(ids.Random(8))
}

func TestSourceLifecycle(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "sources")
		q := queueName(t)
		src := must(c.CreateSource(ctx, key, &registryv1.CreateSourceRequest{ProjectId: p.Id, Name: "orders", Amqp: &registryv1.AMQPSource{Queue: q}}))(t).Source
		if !strings.HasPrefix(src.Id, "src_") || src.ProjectId != p.Id || src.Name != "orders" || src.GetAmqp().GetQueue() != q ||
			src.Status != registryv1.SourceStatus_SOURCE_STATUS_ACTIVE || src.CreateTime == nil || src.UpdateTime == nil {
			t.Fatalf("created source = %v", src)
		}
		got := must(c.GetSource(ctx, key, &registryv1.GetSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t).Source
		if got.Id != src.Id || got.GetAmqp().GetQueue() != q {
			t.Fatalf("GetSource = %v", got)
		}

		paused := must(c.PauseSource(ctx, key, &registryv1.PauseSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t).Source
		if paused.Status != registryv1.SourceStatus_SOURCE_STATUS_PAUSED {
			t.Fatalf("paused status = %v", paused.Status)
		}
		active := must(c.ActivateSource(ctx, key, &registryv1.ActivateSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t).Source
		if active.Status != registryv1.SourceStatus_SOURCE_STATUS_ACTIVE {
			t.Fatalf("activated status = %v", active.Status)
		}
		q2 := queueName(t)
		name := "renamed"
		upd := must(c.UpdateSource(ctx, key, &registryv1.UpdateSourceRequest{ProjectId: p.Id, SourceId: src.Id, Name: &name, Amqp: &registryv1.AMQPSource{Queue: q2}}))(t).Source
		if upd.Name != "renamed" || upd.GetAmqp().GetQueue() != q2 {
			t.Fatalf("updated source = %v", upd)
		}

		// Counters come from ingest through the internal service, summed.
		for range 2 {
			must(c.AddSourceCounts(ctx, testAdminKey, &registryv1.AddSourceCountsRequest{Counts: []*registryv1.SourceCounts{
				{ProjectId: p.Id, SourceId: src.Id, Accepted: 5, Duplicates: 2, Rejected: 1}}}))(t)
		}
		list := must(c.ListSources(ctx, key, &registryv1.ListSourcesRequest{ProjectId: p.Id}))(t).Sources
		if len(list) != 1 || list[0].Accepted != 10 || list[0].Duplicates != 4 || list[0].Rejected != 2 {
			t.Fatalf("ListSources = %v, want one source with counters 10/4/2", list)
		}
		// A user's update replaces the source's document: the counters,
		// kept apart, survive it.
		must(c.PauseSource(ctx, key, &registryv1.PauseSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		got = must(c.GetSource(ctx, key, &registryv1.GetSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t).Source
		if got.Accepted != 10 || got.Status != registryv1.SourceStatus_SOURCE_STATUS_PAUSED {
			t.Fatalf("after pause: %v", got)
		}

		all := must(c.ListAllSources(ctx, testAdminKey, &registryv1.ListAllSourcesRequest{}))(t).Sources
		found := false
		for _, s := range all {
			found = found || s.Id == src.Id && s.Status == registryv1.SourceStatus_SOURCE_STATUS_PAUSED
		}
		if !found {
			t.Fatalf("ListAllSources lacks paused source %s: %v", src.Id, all)
		}
		_, err := c.ListAllSources(ctx, key, &registryv1.ListAllSourcesRequest{})
		wantErr(t, err, connect.CodePermissionDenied, "")

		must(c.DeleteSource(ctx, key, &registryv1.DeleteSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		_, err = c.GetSource(ctx, key, &registryv1.GetSourceRequest{ProjectId: p.Id, SourceId: src.Id})
		wantErr(t, err, connect.CodeNotFound, src.Id)
		// Counts flushed after the delete are dropped, not kept as orphans.
		must(c.AddSourceCounts(ctx, testAdminKey, &registryv1.AddSourceCountsRequest{Counts: []*registryv1.SourceCounts{
			{ProjectId: p.Id, SourceId: src.Id, Accepted: 1}}}))(t)
		if n, err := env.svc.store.sourceCounters().CountDocuments(ctx, map[string]string{"_id": src.Id}); err != nil || n != 0 {
			t.Fatalf("counters of deleted source: %d, %v", n, err)
		}
		// The queue is free again.
		must(c.CreateSource(ctx, key, &registryv1.CreateSourceRequest{ProjectId: p.Id, Name: "again", Amqp: &registryv1.AMQPSource{Queue: q2}}))(t)
	})
}

func TestSourceValidation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "sources")
		other, otherKey := newProject(t, c, "other")
		taken := queueName(t)
		src := must(c.CreateSource(ctx, key, &registryv1.CreateSourceRequest{ProjectId: p.Id, Name: "taken", Amqp: &registryv1.AMQPSource{Queue: taken}}))(t).Source
		create := func(k, project, name, queue string) error {
			req := &registryv1.CreateSourceRequest{ProjectId: project, Name: name}
			if queue != "-" {
				req.Amqp = &registryv1.AMQPSource{Queue: queue}
			}
			_, err := c.CreateSource(ctx, k, req)
			return err
		}
		for _, tc := range []struct {
			name, key, project, srcName, queue string
			code                               connect.Code
			msg                                string
		}{
			{"empty name", key, p.Id, " ", queueName(t), connect.CodeInvalidArgument, "name: must not be empty"},
			{"no amqp", key, p.Id, "a", "-", connect.CodeInvalidArgument, "amqp.queue: must not be empty"},
			{"queue with space", key, p.Id, "a", "my queue", connect.CodeInvalidArgument, "amqp.queue: \"my queue\" may hold only"},
			{"queue too long", key, p.Id, "a", strings.Repeat("q", 201), connect.CodeInvalidArgument, "at most 200 bytes"},
			{"amq. queue", key, p.Id, "a", "amq.gen-1", connect.CodeInvalidArgument, "RabbitMQ reserves"},
			{"hookmesh queue", key, p.Id, "a", "hookmesh.deliver", connect.CodeInvalidArgument, "hookmesh's own queues"},
			{"rejected queue", key, p.Id, "a", taken + ".rejected", connect.CodeInvalidArgument, "rejected messages"},
			{"queue of another source", otherKey, other.Id, "a", taken, connect.CodeAlreadyExists, "already the queue of another source"},
			{"other project's key", otherKey, p.Id, "a", queueName(t), connect.CodeNotFound, p.Id},
			{"no key", "", p.Id, "a", queueName(t), connect.CodeUnauthenticated, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, create(tc.key, tc.project, tc.srcName, tc.queue), tc.code, tc.msg)
			})
		}
		// Another project's key learns nothing of the project.
		_, err := c.GetSource(ctx, otherKey, &registryv1.GetSourceRequest{ProjectId: p.Id, SourceId: src.Id})
		wantErr(t, err, connect.CodeNotFound, p.Id)
		_, err = c.GetSource(ctx, otherKey, &registryv1.GetSourceRequest{ProjectId: other.Id, SourceId: src.Id})
		wantErr(t, err, connect.CodeNotFound, src.Id)
		_, err = c.PauseSource(ctx, key, &registryv1.PauseSourceRequest{ProjectId: p.Id, SourceId: "not an id"})
		wantErr(t, err, connect.CodeInvalidArgument, "source_id")
		_, err = c.UpdateSource(ctx, key, &registryv1.UpdateSourceRequest{ProjectId: p.Id, SourceId: src.Id, Amqp: &registryv1.AMQPSource{Queue: "amq.x"}})
		wantErr(t, err, connect.CodeInvalidArgument, "amqp.queue")
		second := must(c.CreateSource(ctx, key, &registryv1.CreateSourceRequest{ProjectId: p.Id, Name: "second", Amqp: &registryv1.AMQPSource{Queue: queueName(t)}}))(t).Source
		_, err = c.UpdateSource(ctx, key, &registryv1.UpdateSourceRequest{ProjectId: p.Id, SourceId: second.Id, Amqp: &registryv1.AMQPSource{Queue: taken}})
		wantErr(t, err, connect.CodeAlreadyExists, "already the queue of another source")
	})
}

// TestSourceChangesAreAnnounced checks that every write of a source
// notifies the caches (and ingest's sources) of its project.
func TestSourceChangesAreAnnounced(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	var mu sync.Mutex
	heard := map[string][]string{}
	env.svc.notify = func(_ context.Context, projectID, procedure string) error {
		mu.Lock()
		defer mu.Unlock()
		heard[projectID] = append(heard[projectID], procedure[strings.LastIndexByte(procedure, '/')+1:])
		return nil
	}
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		p, key := newProject(t, c, "sources")
		src := must(c.CreateSource(ctx, key, &registryv1.CreateSourceRequest{ProjectId: p.Id, Name: "a", Amqp: &registryv1.AMQPSource{Queue: queueName(t)}}))(t).Source
		must(c.GetSource(ctx, key, &registryv1.GetSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		must(c.PauseSource(ctx, key, &registryv1.PauseSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		must(c.ActivateSource(ctx, key, &registryv1.ActivateSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		must(c.UpdateSource(ctx, key, &registryv1.UpdateSourceRequest{ProjectId: p.Id, SourceId: src.Id, Amqp: &registryv1.AMQPSource{Queue: queueName(t)}}))(t)
		must(c.DeleteSource(ctx, key, &registryv1.DeleteSourceRequest{ProjectId: p.Id, SourceId: src.Id}))(t)
		mu.Lock()
		got := strings.Join(heard[p.Id], ",")
		mu.Unlock()
		if want := "CreateProject,CreateSource,PauseSource,ActivateSource,UpdateSource,DeleteSource"; got != want {
			t.Fatalf("announced %s, want %s", got, want)
		}
	})
}
