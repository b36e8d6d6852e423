package wire_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/wire"
)

// A nonce is refused from the same member within the window, whether
// seen live or loaded at start; another member's same nonce is its own;
// once the window has passed, the nonce is forgotten.
func TestReplayWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	w := wire.NewReplayWindow(time.Minute, func() time.Time { return now })
	a, b := peer.ID("a"), peer.ID("b")
	n1, n2 := [16]byte{1}, [16]byte{2}
	w.Saw(a, n2, now.Add(-30*time.Second))
	if !w.First(a, n1) {
		t.Fatal("a new nonce refused")
	}
	if w.First(a, n1) {
		t.Error("a replay accepted")
	}
	if w.First(a, n2) {
		t.Error("a replay of a nonce loaded at start accepted")
	}
	if !w.First(b, n1) {
		t.Error("another member's nonce refused")
	}
	now = now.Add(31 * time.Second)
	if !w.First(a, n2) {
		t.Error("a nonce past its window still refused")
	}
	if w.First(a, n1) {
		t.Error("a nonce within its window accepted again")
	}
	now = now.Add(time.Minute)
	if !w.First(a, n1) {
		t.Error("a nonce past its window still refused")
	}
}
