package router

import (
	"sync"

	registryv1 "github.com/hookmesh/hookmesh/gen/hookmesh/registry/v1"
	"github.com/hookmesh/hookmesh/internal/filter"
)

// compiled is a subscription's body and header filters, compiled.
type compiled struct {
	body, headers *filter.Filter
	err           error
}

// filters compiles subscription filters once per subscription version.
type filters struct {
	mu    sync.Mutex
	cache map[string]*compiled
}

// maxCompiled bounds the cache; past it the cache starts over.
const maxCompiled = 100_000

func (f *filters) get(sub *registryv1.Subscription) *compiled {
	key := sub.GetId() + "@" + sub.GetUpdateTime().AsTime().String()
	f.mu.Lock()
	c, ok := f.cache[key]
	f.mu.Unlock()
	if ok {
		return c
	}
	c = &compiled{}
	c.body, c.err = compile(sub.GetFilter().GetBody())
	if c.err == nil {
		c.headers, c.err = compile(sub.GetFilter().GetHeaders())
	}
	f.mu.Lock()
	if f.cache == nil || len(f.cache) >= maxCompiled {
		f.cache = map[string]*compiled{}
	}
	f.cache[key] = c
	f.mu.Unlock()
	return c
}

// compile compiles a filter document given as JSON text, with its numbers
// exact; nil for the empty text (no filter).
func compile(text string) (*filter.Filter, error) {
	if text == "" {
		return nil, nil
	}
	doc, err := filter.ParseDocument([]byte(text))
	if err != nil {
		return nil, err
	}
	return filter.Compile(doc, filter.Options{})
}

// event is what filters are matched against; the body is decoded once, on
// first use.
type event struct {
	data    []byte
	headers map[string]string

	decoded bool
	body    any
	bodyErr error
}

func (e *event) decodedBody() (any, error) {
	if !e.decoded {
		e.body, e.bodyErr = filter.DecodeJSON(e.data)
		e.decoded = true
	}
	return e.body, e.bodyErr
}

// choose returns the subscription through which the event goes to the
// target: nil with true for an endpoint without subscriptions (it receives
// everything sent to it), the first subscription whose filters accept the
// event, or false when none does.
func (f *filters) choose(t *registryv1.Target, ev *event) (*registryv1.Subscription, bool) {
	subs := t.GetSubscriptions()
	if len(subs) == 0 {
		return nil, true
	}
	for _, sub := range subs {
		c := f.get(sub)
		if c.err != nil {
			// Filters are validated when saved; one that no longer compiles
			// (a stricter version) selects nothing rather than everything.
			continue
		}
		if c.headers != nil && !c.headers.MatchHeaders(ev.headers) {
			continue
		}
		if c.body != nil && !c.body.IsEmpty() {
			body, err := ev.decodedBody()
			if err != nil || !c.body.Match(body) {
				continue
			}
		}
		return sub, true
	}
	return nil, false
}
