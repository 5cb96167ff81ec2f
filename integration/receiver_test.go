package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an HTTP endpoint that records what it gets and answers with
// the status its respond function chooses (200 by default).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	notify  chan struct{}
	respond func(r *http.Request) int
	// respondHeader, when set, chooses the status and may set response
	// headers.
	respondHeader func(w http.Header) int
	// pathHeader records the request path as the X-Hookmesh-Test-Path
	// header, for telling endpoints at different paths apart.
	pathHeader bool
}

func newReceiver(tb testing.TB) *receiver {
	r := &receiver{notify: make(chan struct{}, 1<<16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		h := req.Header.Clone()
		if r.pathHeader {
			h.Set("X-Hookmesh-Test-Path", req.URL.Path)
		}
		r.got = append(r.got, received{header: h, body: body, at: time.Now()})
		respond := r.respond
		r.mu.Unlock()
		code := http.StatusOK
		if respond != nil {
			code = respond(req)
		}
		if r.respondHeader != nil {
			code = r.respondHeader(w.Header())
			if code >= 300 && code < 400 {
				w.Header().Set("Location", "/elsewhere")
			}
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"ok":true}`))
		r.notify <- struct{}{}
	}))
	tb.Cleanup(r.Close)
	return r
}

// requests returns what was received so far.
func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// byEvent returns the requests for one event id.
func (r *receiver) byEvent(eventID string) []received {
	var out []received
	for _, g := range r.requests() {
		if g.header.Get("X-Hookmesh-Event-Id") == eventID {
			out = append(out, g)
		}
	}
	return out
}

// waitFor waits up to 30 s until cond holds over the received requests.
func (r *receiver) waitFor(tb testing.TB, what string, cond func([]received) bool) []received {
	tb.Helper()
	return r.waitWithin(tb, what, 30*time.Second, cond)
}

// waitWithin is waitFor with a deadline of its own.
func (r *receiver) waitWithin(tb testing.TB, what string, within time.Duration, cond func([]received) bool) []received {
	tb.Helper()
	deadline := time.After(within)
	for {
		got := r.requests()
		if cond(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("receiver: timed out waiting for %s (got %d requests)", what, len(got))
		}
	}
}

// holdFirst makes the receiver hold its first request until release is
// called (at the latest when the test ends, so that a failing test does
// not leave the handler blocked), and answer 200 to every request.
func (r *receiver) holdFirst(tb testing.TB) (release func()) {
	hold := make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	tb.Cleanup(release)
	var first sync.Once
	r.respond = func(*http.Request) int {
		held := false
		first.Do(func() { held = true })
		if held {
			<-hold
		}
		return http.StatusOK
	}
	return release
}
