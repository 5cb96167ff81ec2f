package app

import (
	"slices"
	"testing"
)

// TestModuleTable checks that every module has an init and a dependency
// entry, that every target is a module, and that each module comes after
// what it needs.
func TestModuleTable(t *testing.T) {
	t.Parallel()
	for m := range moduleDeps {
		if moduleInits[m] == nil {
			t.Errorf("module %q has dependencies but no init", m)
		}
		for _, d := range moduleDeps[m] {
			if _, ok := moduleDeps[d]; !ok {
				t.Errorf("module %q needs %q, which is not a module", m, d)
			}
		}
	}
	for m := range moduleInits {
		if _, ok := moduleDeps[m]; !ok {
			t.Errorf("module %q has an init but no dependency entry", m)
		}
	}
	for _, target := range AllTargets {
		if _, ok := moduleDeps[target]; !ok {
			t.Errorf("target %q is not a module", target)
		}
	}
	order := modulesFor(AllTargets)
	for i, m := range order {
		for _, d := range moduleDeps[m] {
			if j := slices.Index(order, d); j < 0 || j > i {
				t.Errorf("module %q starts before %q, which it needs (order %v)", m, d, order)
			}
		}
	}
}

// TestModulesFor checks which modules a process builds for its targets.
func TestModulesFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		targets []string
		want    []string
	}{
		{[]string{TargetRouter}, []string{moduleBus, moduleChanges, moduleRPC, moduleRegistryClient, TargetRouter}},
		{[]string{TargetRegistry}, []string{moduleBus, moduleChanges, moduleMongoDB, moduleRPC, moduleUI, TargetRegistry}},
		{[]string{TargetDeliverer, TargetRouter}, []string{moduleBus, moduleChanges, moduleRPC, moduleRegistryClient, TargetDeliverer, TargetRouter}},
	} {
		if got := modulesFor(tc.targets); !slices.Equal(got, tc.want) {
			t.Errorf("modulesFor(%v) = %v, want %v", tc.targets, got, tc.want)
		}
	}
	if needs([]string{TargetRegistry}, moduleRegistryClient) {
		t.Error("the registry alone should not need a registry client")
	}
	if !needs([]string{TargetStatus}, moduleMongoDB) {
		t.Error("the status service needs MongoDB")
	}
}
