package registry

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
)

func TestCheckMetaEventTypes(t *testing.T) {
	t.Parallel()
	got, err := checkMetaEventTypes([]string{"delivery.failed", "endpoint.disabled", "delivery.failed"})
	if err != nil || strings.Join(got, ",") != "delivery.failed,endpoint.disabled" {
		t.Fatalf("known types: %v %v", got, err)
	}
	for _, bad := range [][]string{{"delivery.failed", "delivery.*"}, {"endpoint.created", "Endpoint.Created"}, {"endpoint.created", ""}} {
		_, err := checkMetaEventTypes(bad)
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "event_types[1]") || !strings.Contains(err.Error(), `"`+bad[1]+`"`) {
			t.Errorf("%q: %v, want InvalidArgument naming event_types[1] and the type", bad, err)
		}
	}
}
