package directory

import (
	"context"
	"testing"
	"time"

	mh "github.com/multiformats/go-multihash"
)

// Every announcement waiting for room in the placement's queue goes on
// once the loop has taken enough keys, however many wait: none is left
// waiting for a wake-up another took.
func TestEveryAnnouncementWaitingForRoomGoesOn(t *testing.T) {
	d := &Directory{stop: make(chan struct{})}
	d.place.room = make(chan struct{})
	d.place.queue = make([]mh.Multihash, maxQueued+placeBatch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const waiting = 5
	done := make(chan error, waiting)
	for range waiting {
		go func() { done <- d.waitForRoom(ctx) }()
	}
	time.Sleep(50 * time.Millisecond) // let them find the queue full
	for range 2 {                     // the second take leaves room
		if n := len(d.take()); n != placeBatch {
			t.Fatalf("the loop took %d keys, want %d", n, placeBatch)
		}
	}
	for i := range waiting {
		if err := <-done; err != nil {
			t.Fatalf("announcement %d of %d still waiting: %v", i+1, waiting, err)
		}
	}
}
