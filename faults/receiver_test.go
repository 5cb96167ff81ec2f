//go:build faults

package faults

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// behaviour is how the receiver answers.
type behaviour struct {
	// latency is how long each answer takes.
	latency time.Duration
	// failShare of requests get a 500; timeoutShare more get no answer
	// until the sender gives up.
	failShare, timeoutShare float64
}

// hit is one request the receiver got and what it answered: the status
// code, or 0 when it let the request time out.
type hit struct {
	endpoint   int
	eventID    string
	deliveryID string
	webhookID  string
	code       int
	signed     bool
	at         time.Time
}

// receiver is the customers' endpoints: /ep/<n> for endpoint n. It checks
// each request's signature and records everything.
type receiver struct {
	srv      *http.Server
	url      string
	mu       sync.Mutex
	hits     []hit
	secrets  []string
	behave   behaviour
	rng      *rand.Rand
	inFlight atomic.Int64
}

func startReceiver(b behaviour, seed uint64) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), behave: b, rng: rand.New(rand.NewPCG(seed, seed))}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

// setSecrets gives the endpoints' signing secrets, by endpoint number.
func (r *receiver) setSecrets(s []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = s
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	h := hit{endpoint: -1, eventID: req.Header.Get("X-Hookmesh-Event-Id"), deliveryID: req.Header.Get("X-Hookmesh-Delivery-Id"),
		webhookID: req.Header.Get("webhook-id"), at: time.Now()}
	if n, ok := strings.CutPrefix(req.URL.Path, "/ep/"); ok && len(n) == 1 && n[0] >= '0' && n[0] <= '9' {
		h.endpoint = int(n[0] - '0')
	}
	r.mu.Lock()
	roll := r.rng.Float64()
	var secret string
	if h.endpoint >= 0 && h.endpoint < len(r.secrets) {
		secret = r.secrets[h.endpoint]
	}
	r.mu.Unlock()
	if secret != "" {
		if wh, err := standardwebhooks.NewWebhook(secret); err == nil {
			h.signed = wh.Verify(body, req.Header) == nil
		}
	}

	switch {
	case roll < r.behave.failShare:
		h.code = http.StatusInternalServerError
	case roll < r.behave.failShare+r.behave.timeoutShare:
		// No answer: wait for the sender to give up.
		select {
		case <-req.Context().Done():
		case <-time.After(time.Minute):
		}
		r.record(h)
		return
	default:
		h.code = http.StatusOK
	}
	if r.behave.latency > 0 {
		select {
		case <-req.Context().Done():
			// The sender went away (killed): it never saw an answer.
			h.code = 0
			r.record(h)
			return
		case <-time.After(r.behave.latency):
		}
	}
	w.WriteHeader(h.code)
	r.record(h)
}

func (r *receiver) record(h hit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits = append(r.hits, h)
}

func (r *receiver) snapshot() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}
