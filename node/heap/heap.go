// Package heap gives the C heap's free pages back to the system. SQLite
// allocates its page caches with the C library's malloc, and glibc keeps
// what a closed connection freed inside its arenas: a centre that read a
// million patients at start holds that memory resident for good unless
// it is asked to return it. Trim asks; Run asks now and then. Where the
// C library cannot (no cgo, not glibc), both do nothing.
package heap

import (
	"context"
	"time"
)

// Run trims the C heap every interval until ctx ends.
func Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			Trim()
		}
	}
}
