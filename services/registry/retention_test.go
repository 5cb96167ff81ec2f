package registry

import (
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestRetention sets a project's retention on create and update, refuses
// what is out of range naming the field, and checks what ListRetentions
// tells the pruners: the days in force, 30 by default, page by page, to
// the admin key only.
func TestRetention(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.eachProtocol(t, func(t *testing.T, c *apiClient) {
		ctx := t.Context()
		def, key := newProject(t, c, "default retention")
		if def.Retention != DefaultRetentionDays {
			t.Errorf("a new project keeps %d days, want %d", def.Retention, DefaultRetentionDays)
		}
		short := must(c.CreateProject(ctx, testAdminKey, &registryv1.CreateProjectRequest{Name: "short", Retention: 7}))(t).Project
		if short.Retention != 7 {
			t.Errorf("created with retention 7, got %d", short.Retention)
		}
		for _, days := range []int32{-1, 3651, 1 << 30} {
			_, err := c.CreateProject(ctx, testAdminKey, &registryv1.CreateProjectRequest{Name: "bad", Retention: days})
			wantErr(t, err, connect.CodeInvalidArgument, "retention")
			_, err = c.UpdateProject(ctx, key, &registryv1.UpdateProjectRequest{ProjectId: def.Id, Retention: proto.Int32(days)})
			wantErr(t, err, connect.CodeInvalidArgument, "retention")
		}
		upd := must(c.UpdateProject(ctx, key, &registryv1.UpdateProjectRequest{ProjectId: def.Id, Retention: proto.Int32(3650)}))(t).Project
		if upd.Retention != 3650 {
			t.Errorf("updated to 3650 days, got %d", upd.Retention)
		}
		// An update that leaves retention out keeps it; 0 goes back to the default.
		upd = must(c.UpdateProject(ctx, key, &registryv1.UpdateProjectRequest{ProjectId: def.Id, Name: proto.String("renamed")}))(t).Project
		if upd.Retention != 3650 {
			t.Errorf("an update without retention changed it to %d", upd.Retention)
		}
		must(c.UpdateProject(ctx, testAdminKey, &registryv1.UpdateProjectRequest{ProjectId: short.Id, Retention: proto.Int32(0)}))(t)

		_, err := c.ListRetentions(ctx, key, &registryv1.ListRetentionsRequest{})
		if connect.CodeOf(err) != connect.CodePermissionDenied && connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("ListRetentions with a project key: %v, want it refused", err)
		}
		got := map[string]int32{}
		token := ""
		for pages := 0; ; pages++ {
			resp := must(c.ListRetentions(ctx, testAdminKey, &registryv1.ListRetentionsRequest{PageSize: 1, PageToken: token}))(t)
			for _, r := range resp.Retentions {
				got[r.ProjectId] = r.Days
			}
			if token = resp.NextPageToken; token == "" {
				break
			}
			if pages > 1000 {
				t.Fatal("ListRetentions never ends")
			}
		}
		if got[def.Id] != 3650 || got[short.Id] != DefaultRetentionDays {
			t.Errorf("ListRetentions = %v, want %s: 3650 and %s: %d", got, def.Id, short.Id, DefaultRetentionDays)
		}
	})
}
