package deliverer

import "sync"

// streaks counts each endpoint's failed attempts in a row, as this
// deliverer saw them; a success starts over. With several replicas each
// counts its own share, so an endpoint is disabled after at most the
// threshold times the number of replicas.
type streaks struct {
	mu     sync.Mutex
	failed map[string]uint32
}

func newStreaks() *streaks { return &streaks{failed: map[string]uint32{}} }

// fail records a failed attempt and returns the run's length.
func (s *streaks) fail(endpointID string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[endpointID]++
	return s.failed[endpointID]
}

// reset starts the endpoint's run over.
func (s *streaks) reset(endpointID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failed, endpointID)
}
