package ids

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func TestNewSortsByTime(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_700_000_000_000)
	var got []string
	for i := range 100 {
		got = append(got, NewAt("evt", base.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("ids made later do not sort later: %v", got[:5])
	}
	if !strings.HasPrefix(got[0], "evt_") || len(got[0]) != len("evt_")+26 {
		t.Fatalf("unexpected id shape %q", got[0])
	}
	ts, ok := Time(got[7])
	if !ok || !ts.Equal(base.Add(7*time.Millisecond)) {
		t.Fatalf("Time(%q) = %v, %v", got[7], ts, ok)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	a := Deterministic("dlv", "evt_1", "ep_2")
	if a != Deterministic("dlv", "evt_1", "ep_2") {
		t.Fatal("same parts gave different ids")
	}
	// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
	if Deterministic("x", "ab", "c") == Deterministic("x", "a", "bc") {
		t.Fatal("ambiguous concatenation")
	}
}
