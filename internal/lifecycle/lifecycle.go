// Package lifecycle runs the long-running parts of a service together, so
// that a service owns every goroutine it starts.
package lifecycle

import (
	"context"
	"errors"
	"sync"
)

// Part is a long-running part of a service: it works until ctx ends or it
// fails, and returns once its work has drained.
type Part func(ctx context.Context) error

// Run runs parts until ctx ends or one of them fails, which stops the
// others. It returns once every part has returned, with their errors.
func Run(ctx context.Context, parts ...Part) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, part := range parts {
		wg.Go(func() {
			if err := part(ctx); err != nil {
				errs[i] = err
				cancel(err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
