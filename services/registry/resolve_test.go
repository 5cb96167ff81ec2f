package registry

import "testing"

func TestAcceptsEventType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		event    string
		want     bool
	}{
		{nil, "anything", true},
		{[]string{"*"}, "anything", true},
		{[]string{"invoice.paid"}, "invoice.paid", true},
		{[]string{"invoice.paid"}, "invoice.paid.late", false},
		{[]string{"invoice.*"}, "invoice.paid", true},
		{[]string{"invoice.*"}, "invoice.paid.late", true},
		{[]string{"invoice.*"}, "invoice", false},
		{[]string{"invoice.*"}, "invoices.paid", false},
		{[]string{"user.created", "invoice.*"}, "invoice.x", true},
		{[]string{"user.created"}, "user.deleted", false},
	}
	for _, tt := range tests {
		if got := acceptsEventType(tt.patterns, tt.event); got != tt.want {
			t.Errorf("acceptsEventType(%q, %q) = %v, want %v", tt.patterns, tt.event, got, tt.want)
		}
	}
}

func TestSelectTarget(t *testing.T) {
	t.Parallel()
	project := &retryDoc{Strategy: strategyExponential, IntervalSeconds: 10, MaxAttempts: 10}
	override := &retryDoc{Strategy: strategyLinear, IntervalSeconds: 1, MaxAttempts: 2}
	sub := func(retry *retryDoc, types ...string) subscriptionDoc {
		return subscriptionDoc{Filter: filterDoc{EventTypes: types}, RetryPolicy: retry}
	}
	tests := []struct {
		name      string
		subs      []subscriptionDoc
		event     string
		want      bool
		wantRetry *retryDoc
	}{
		{"no subscriptions", nil, "a", true, project},
		{"none accepts", []subscriptionDoc{sub(override, "b")}, "a", false, project},
		{"accepting without override", []subscriptionDoc{sub(nil, "a")}, "a", true, project},
		{"accepting with override", []subscriptionDoc{sub(nil, "a"), sub(override, "a.*", "a")}, "a", true, override},
		{"override of a refusing one is ignored", []subscriptionDoc{sub(override, "b"), sub(nil, "*")}, "a", true, project},
	}
	for _, tt := range tests {
		got, retry := selectTarget(tt.subs, eventInfo{Type: tt.event}, project)
		if got != tt.want || (got && retry != tt.wantRetry) {
			t.Errorf("%s: got %v, %v; want %v, %v", tt.name, got, retry, tt.want, tt.wantRetry)
		}
	}
}
