package mesh_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/hookmesh/hookmesh/internal/mesh"
)

// TestDefinitionsFileIsCurrent keeps deploy/rabbitmq/definitions.json, which
// operators load in the management console, equal to what the services
// declare. HOOKMESH_UPDATE_DEFINITIONS=1 rewrites it.
func TestDefinitionsFileIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := mesh.NewTopology("hookmesh", 4).Definitions("/")
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../deploy/rabbitmq/definitions.json"
	if os.Getenv("HOOKMESH_UPDATE_DEFINITIONS") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run HOOKMESH_UPDATE_DEFINITIONS=1 go test ./internal/mesh -run TestDefinitionsFileIsCurrent", path)
	}
}
