package registry

import "strings"

// eventInfo is what subscriptions are matched against. The event's data and
// custom headers join it when body and header filters are evaluated.
type eventInfo struct {
	Type string
}

// acceptsEventType reports whether event-type patterns accept eventType:
// an empty list or "*" accepts all, "prefix.*" accepts the types that start
// with "prefix.", and any other pattern accepts itself.
func acceptsEventType(patterns []string, eventType string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p == "*" || p == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}

// accepts reports whether the subscription accepts ev.
func (d *subscriptionDoc) accepts(ev eventInfo) bool {
	return acceptsEventType(d.Filter.EventTypes, ev.Type)
}

// acceptingSubscriptions returns the subscriptions (in creation order) that
// accept ev, and whether the endpoint receives ev at all: an endpoint
// without subscriptions receives everything (with none listed); otherwise
// at least one must accept ev. Body and header filters are left to the
// router, which has the event's data.
func acceptingSubscriptions(subs []subscriptionDoc, ev eventInfo) ([]*subscriptionDoc, bool) {
	if len(subs) == 0 {
		return nil, true
	}
	var out []*subscriptionDoc
	for i := range subs {
		if subs[i].accepts(ev) {
			out = append(out, &subs[i])
		}
	}
	return out, len(out) > 0
}

// selectTarget decides whether an endpoint with the given subscriptions (in
// creation order) receives ev, and under which retry policy: an endpoint
// without subscriptions receives everything under the project's policy;
// otherwise one of its subscriptions must accept ev, and the first
// accepting one that overrides the policy sets it.
func selectTarget(subs []subscriptionDoc, ev eventInfo, projectRetry *retryDoc) (bool, *retryDoc) {
	if len(subs) == 0 {
		return true, projectRetry
	}
	matched := false
	for i := range subs {
		if !subs[i].accepts(ev) {
			continue
		}
		if subs[i].RetryPolicy != nil {
			return true, subs[i].RetryPolicy
		}
		matched = true
	}
	return matched, projectRetry
}
