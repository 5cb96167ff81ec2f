package filter_test

import (
	"testing"

	"github.com/hookmesh/hookmesh/internal/filter"
)

// benchPayload is an order event of about 1 KiB.
const benchPayload = `{
  "id": "evt_01hx3k9d2m8q7r6s5t4v3w2x1y",
  "type": "order.paid",
  "created_at": "2024-06-30T12:34:56.789Z",
  "data": {
    "order_id": "ord_7f3a9c2e",
    "amount": 129900,
    "currency": "EUR",
    "gift_message": "Happy birthday! Enjoy the new keyboard.",
    "status": "paid",
    "customer": {
      "id": "cus_42",
      "name": "Ada Lovelace",
      "email": "ada@example.com",
      "tier": "silver",
      "address": {"line1": "12 rue de la Paix", "city": "Paris", "zip": "75002", "country": "FR"}
    },
    "items": [
      {"sku": "SKU-001", "name": "Mechanical keyboard", "qty": 1, "price": 89900},
      {"sku": "SKU-002", "name": "Wrist rest", "qty": 2, "price": 15000},
      {"sku": "SKU-003", "name": "Keycap set", "qty": 1, "price": 10000}
    ],
    "shipping": {"method": "express", "carrier": "colissimo", "tracking": null},
    "metadata": {"campaign": "summer-sale", "channel": "web", "ab_bucket": 7, "referrer": "https://example.com/blog/keyboards"}
  },
  "livemode": true,
  "api_version": "2024-06-01"
}`

// benchFilter is a typical subscription filter: three conditions, one a
// nested $or whose first branch fails.
const benchFilter = `{
  "type": "order.paid",
  "data.amount": {"$gte": 10000},
  "data.customer": {"$or": [{"tier": "gold"}, {"address.country": {"$in": ["FR", "DE", "NL"]}}]}
}`

func BenchmarkMatch(b *testing.B) {
	if len(benchPayload) < 1024 || len(benchPayload) > 1100 {
		b.Fatalf("payload is %d bytes, want about 1 KiB", len(benchPayload))
	}
	f := compileJSON(b, benchFilter)
	payload := decode(b, benchPayload)
	if !f.Match(payload) {
		b.Fatal("the filter does not match the payload")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(payload)
	}
}

func BenchmarkMatchHeaders(b *testing.B) {
	f := compileJSON(b, `{"X-Tenant": "acme", "X-Event": {"$in": ["order.paid", "order.refunded"]}}`)
	h := map[string]string{
		"content-type": "application/json", "user-agent": "hookmesh/1.0", "x-tenant": "acme",
		"x-event": "order.paid", "webhook-id": "msg_1", "webhook-timestamp": "1719750896",
		"webhook-signature": "v1,abc", "x-request-id": "req_1",
	}
	if !f.MatchHeaders(h) {
		b.Fatal("the filter does not match the headers")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.MatchHeaders(h)
	}
}

func BenchmarkCompile(b *testing.B) {
	doc := decodeObject(b, benchFilter)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := filter.Compile(doc, filter.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
