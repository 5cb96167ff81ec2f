//go:build faults

package faults

import (
	"context"
	"sync"
	"time"
)

// inFlight waits up to d for the receiver to be in the middle of a request
// and says how many it is in.
func inFlight(r *run, d time.Duration) int64 {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n := r.recv.inFlight.Load(); n > 0 {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.recv.inFlight.Load()
}

// cutOff counts the requests whose sender went away before the answer.
func cutOff(r *run) int {
	n := 0
	for _, h := range r.recv.snapshot() {
		if h.code == 0 {
			n++
		}
	}
	return n
}

// killDeliverers kills one deliverer with requests in flight, restarts it,
// then kills both at once, so that every request in flight is cut off.
func killDeliverers(ctx context.Context, r *run) error {
	time.Sleep(4 * time.Second)
	d := r.stack.deliverers[0]
	n := inFlight(r, 5*time.Second)
	d.kill9()
	r.note("kill -9 %s with %d requests in flight at the receiver", d.name, n)
	time.Sleep(2 * time.Second)
	if err := d.start(); err != nil {
		return err
	}
	r.note("%s restarted", d.name)

	time.Sleep(3 * time.Second)
	n = inFlight(r, 5*time.Second)
	var wg sync.WaitGroup
	for _, d := range r.stack.deliverers {
		wg.Go(d.kill9)
	}
	wg.Wait()
	r.note("kill -9 of both deliverers with %d requests in flight at the receiver", n)
	time.Sleep(2 * time.Second)
	for _, d := range r.stack.deliverers {
		if err := d.start(); err != nil {
			return err
		}
	}
	r.note("both deliverers restarted; %d requests so far were cut off before their answer", cutOff(r))
	return nil
}

// killIngest kills ingest under load and counts, at once, the events it
// stored without a publish marker: those the outbox must publish. It goes
// on (up to 6 kills) until a kill leaves some and it killed twice.
func killIngest(ctx context.Context, r *run) error {
	time.Sleep(3 * time.Second)
	left := 0
	for kills := 1; kills <= 6; kills++ {
		r.stack.ingest.kill9()
		n, err := r.stack.unpublished(ctx)
		if err != nil {
			return err
		}
		left += n
		r.note("kill -9 ingest (%d): %d stored events without a publish marker", kills, n)
		time.Sleep(2 * time.Second)
		if err := r.stack.ingest.start(); err != nil {
			return err
		}
		r.note("ingest restarted")
		if kills >= 2 && left > 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	return nil
}

// killCore kills the process of the registry, router and status service
// under load: events it took but had not routed, and state changes it had
// not stored, come back from their queues when it is restarted.
func killCore(ctx context.Context, r *run) error {
	time.Sleep(5 * time.Second)
	r.stack.core.kill9()
	r.note("kill -9 of the registry, router and status process")
	time.Sleep(2 * time.Second)
	if err := r.stack.core.start(); err != nil {
		return err
	}
	r.note("registry, router and status restarted")
	return nil
}

// restartRabbit stops the broker the way an operator does and starts it
// again.
func restartRabbit(ctx context.Context, r *run) error {
	time.Sleep(5 * time.Second)
	start := time.Now()
	if err := suite.rabbit.stop(); err != nil {
		return err
	}
	r.note("RabbitMQ stopped")
	if err := suite.rabbit.start(); err != nil {
		return err
	}
	r.note("RabbitMQ back after %.1fs", time.Since(start).Seconds())
	return nil
}

// stopDatabase stops FerretDB for 30 s.
func stopDatabase(ctx context.Context, r *run) error {
	time.Sleep(5 * time.Second)
	suite.ferret.stop()
	if err := suite.history.cut(ctx); err != nil {
		_ = suite.ferret.start()
		return err
	}
	r.note("FerretDB stopped; PostgreSQL refuses the history's connections and has ended them")
	time.Sleep(30 * time.Second)
	if err := suite.history.restore(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := suite.ferret.start(); err != nil {
		return err
	}
	r.note("FerretDB started again; PostgreSQL takes connections again")
	return nil
}
