package router

import (
	"testing"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
)

// TestFilterNumbersAreExact checks that a body filter given as JSON text
// compares numbers with every digit, beyond 2^53 and 2^64.
func TestFilterNumbersAreExact(t *testing.T) {
	t.Parallel()
	target := &registryv1.Target{Subscriptions: []*registryv1.Subscription{{
		Id: "sub_1",
		Filter: &registryv1.Filter{
			Body:    `{"amount": 12345678901234567890, "big": {"$gt": 123456789012345678901234567890}}`,
			Headers: `{"X-Region": "eu"}`,
		},
	}}}
	var f filters
	for data, want := range map[string]bool{
		`{"amount": 12345678901234567890, "big": 123456789012345678901234567891}`: true,
		`{"amount": 12345678901234567891, "big": 123456789012345678901234567891}`: false,
		`{"amount": 12345678901234567000, "big": 123456789012345678901234567891}`: false,
		`{"amount": 12345678901234567890, "big": 123456789012345678901234567890}`: false,
	} {
		_, got := f.choose(target, &event{data: []byte(data), headers: map[string]string{"x-region": "eu"}})
		if got != want {
			t.Errorf("%s: chosen %v, want %v", data, got, want)
		}
	}
	if _, got := f.choose(target, &event{data: []byte(`{"amount": 12345678901234567890, "big": 123456789012345678901234567891}`)}); got {
		t.Error("the header filter was ignored")
	}
}
