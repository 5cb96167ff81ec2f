package status

import (
	"errors"
	"testing"
	"time"

	statusv1 "github.com/hookmesh/hookmesh/gen/hookmesh/status/v1"
)

func TestPageToken(t *testing.T) {
	t.Parallel()
	q := &deliveryQuery{projectID: "prj_1", statuses: []statusv1.DeliveryStatus{success, failed}}
	fp := q.fingerprint()
	c := pageCursor{createTime: time.UnixMilli(1_700_000_000_123).UTC(), id: "dlv_06h22h3v52ycrxjbg558f0ehqm"}
	tok := encodePageToken(c, fp)
	got, err := decodePageToken(tok, fp)
	if err != nil || !got.createTime.Equal(c.createTime) || got.id != c.id {
		t.Fatalf("decode(encode(%v)) = %v, %v", c, got, err)
	}
	// The order of statuses does not change the listing.
	if (&deliveryQuery{projectID: "prj_1", statuses: []statusv1.DeliveryStatus{failed, success}}).fingerprint() != fp {
		t.Error("statuses in another order gave another fingerprint")
	}
	for _, other := range []*deliveryQuery{
		{projectID: "prj_2", statuses: q.statuses},
		{projectID: "prj_1"},
		{projectID: "prj_1", statuses: q.statuses, eventID: "evt_1"},
		{projectID: "prj_1", statuses: q.statuses, start: time.UnixMilli(1)},
	} {
		if _, err := decodePageToken(tok, other.fingerprint()); !errors.Is(err, errOtherQuery) {
			t.Errorf("token used with %+v: %v, want errOtherQuery", other, err)
		}
	}
	for _, bad := range []string{"", "!!!", tok[:len(tok)-8], "AQ", tok + "="} {
		if _, err := decodePageToken(bad, fp); !errors.Is(err, errMalformedToken) {
			t.Errorf("decode(%q) = %v, want errMalformedToken", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil || DefaultConfig().Database != "hookmesh_status" {
		t.Errorf("default config %+v: %v", DefaultConfig(), err)
	}
	for _, name := range []string{"", "a.b", "a b", "a/b", "x$"} {
		if err := (Config{Database: name}).Validate(); err == nil {
			t.Errorf("database %q accepted", name)
		}
	}
}
