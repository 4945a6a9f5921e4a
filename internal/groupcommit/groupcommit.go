// Package groupcommit merges the work that concurrent goroutines submit
// into batches that run one at a time: while a batch runs, the next one
// fills, so under load many callers share one Redis round trip, and a lone
// caller waits for no one (its batch runs at once).
package groupcommit

import (
	"context"
	"sync"
)

// Committer runs the items given to Do in batches of at most Max items.
type Committer[T any] struct {
	run func(ctx context.Context, items []T) []error
	max int

	mu      sync.Mutex
	pending []item[T]
	running bool
}

type item[T any] struct {
	v    T
	done chan error
}

// New returns a committer that runs batches of at most max items with
// run, which returns one error per item. run gets a context of its own
// (not a caller's), as a batch serves several callers.
func New[T any](max int, run func(ctx context.Context, items []T) []error) *Committer[T] {
	return &Committer[T]{run: run, max: max}
}

// Do submits v and returns its error once the batch that holds it has run.
// When ctx ends first Do returns ctx's error, and v may still be run: the
// work given to a Committer must be safe to repeat.
func (c *Committer[T]) Do(ctx context.Context, v T) error {
	done := make(chan error, 1)
	c.mu.Lock()
	c.pending = append(c.pending, item[T]{v, done})
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead {
		c.lead()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lead runs one batch, then hands the next one, if any, to a new goroutine
// so that the caller that led returns as soon as its own batch is done.
func (c *Committer[T]) lead() {
	c.mu.Lock()
	n := min(len(c.pending), c.max)
	batch := c.pending[:n:n]
	c.pending = append([]item[T](nil), c.pending[n:]...)
	c.mu.Unlock()

	vs := make([]T, len(batch))
	for i, it := range batch {
		vs[i] = it.v
	}
	errs := c.run(context.Background(), vs)
	for i, it := range batch {
		it.done <- errs[i]
	}

	c.mu.Lock()
	if len(c.pending) == 0 {
		c.running = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go c.lead()
}
