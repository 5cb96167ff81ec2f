package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// receipt is one delivery as the receiver first saw it.
type receipt struct {
	eventID  string
	endpoint int // index of the endpoint, from the URL path
	at       time.Time
}

// receiver is the webhook endpoint: every endpoint the benchmark creates
// points at it, as /hooks/<index>. It answers 200 at once and records what
// arrived; a request whose webhook-id was seen before (a redelivery) is
// counted as a duplicate, not as another delivery.
type receiver struct {
	url string
	srv *http.Server
	ln  net.Listener

	mu         sync.Mutex
	seen       map[string]struct{} // webhook-ids
	got        []receipt
	duplicates int
	// anonymous counts requests without a webhook-id, which no delivery
	// from hookmesh should be.
	anonymous int
}

// startReceiver listens on addr and serves until stop.
func startReceiver(addr string) (*receiver, error) {
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for webhooks on %s: %w", addr, err)
	}
	r := &receiver{ln: ln, seen: make(map[string]struct{})}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Listening on every interface: hookmesh reaches it on loopback.
		host = "127.0.0.1"
	}
	r.url = "http://" + net.JoinHostPort(host, port)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{endpoint}", r.handle)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// endpointURL is the URL of the endpoint with index i.
func (r *receiver) endpointURL(i int) string { return r.url + "/hooks/" + strconv.Itoa(i) }

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	// The body is read so that the connection can carry the next request.
	_, _ = io.Copy(io.Discard, req.Body)
	w.WriteHeader(http.StatusOK)

	endpoint, err := strconv.Atoi(req.PathValue("endpoint"))
	if err != nil {
		endpoint = -1
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" {
		r.anonymous++
		return
	}
	if _, ok := r.seen[id]; ok {
		r.duplicates++
		return
	}
	r.seen[id] = struct{}{}
	r.got = append(r.got, receipt{eventID: req.Header.Get("X-Hookmesh-Event-Id"), endpoint: endpoint, at: at})
}

// reset forgets what arrived so far, for the next run on the same
// receiver.
func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = make(map[string]struct{})
	r.got = nil
	r.duplicates, r.anonymous = 0, 0
}

// count is how many distinct deliveries arrived so far.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// snapshot returns the distinct deliveries, the duplicates and the requests
// without a webhook-id so far.
func (r *receiver) snapshot() (got []receipt, duplicates, anonymous int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receipt(nil), r.got...), r.duplicates, r.anonymous
}

// stop shuts the server down.
func (r *receiver) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}
