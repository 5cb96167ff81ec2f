package registry

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestEveryProcedureDeclaresWhetherItChanges fails when an RPC is added to
// the registry without saying whether it changes a project, so that cache
// invalidation never depends on how a method happens to be named.
func TestEveryProcedureDeclaresWhetherItChanges(t *testing.T) {
	t.Parallel()
	served := map[string]bool{}
	for _, file := range []protoreflect.FileDescriptor{registryv1.File_hookmesh_registry_v1_registry_proto, registryv1.File_hookmesh_registry_v1_internal_proto} {
		services := file.Services()
		for i := range services.Len() {
			svc := services.Get(i)
			methods := svc.Methods()
			for j := range methods.Len() {
				procedure := fmt.Sprintf("/%s/%s", svc.FullName(), methods.Get(j).Name())
				served[procedure] = true
				if _, ok := changes[procedure]; !ok {
					t.Errorf("%s is not in changes: declare whether it changes a project", procedure)
				}
			}
		}
	}
	for procedure := range changes {
		if !served[procedure] {
			t.Errorf("changes lists %s, which the registry does not serve", procedure)
		}
	}
}
