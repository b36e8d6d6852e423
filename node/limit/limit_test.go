package limit

import (
	"strconv"
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := New(1, 3, 2)
	k.now = func() time.Time { return now }
	for i := range 3 {
		if !k.Allow("a") {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	if k.Allow("a") {
		t.Fatal("a fourth request at once allowed")
	}
	if !k.Allow("b") {
		t.Fatal("another key is refused for a's requests")
	}
	// The table holds two keys; both are busy, so a third is refused,
	// and remembered by nobody.
	if k.Allow("c") || k.Len() != 2 {
		t.Fatalf("a third key with the table full of busy ones: allowed, or %d keys", k.Len())
	}
	now = now.Add(time.Second)
	if !k.Allow("a") {
		t.Fatal("a second later, a has no request")
	}
	// Once b's bucket is full again, b is forgotten for c.
	now = now.Add(10 * time.Second)
	if !k.Allow("c") {
		t.Fatal("c refused though the others are idle")
	}
	k.SetRate(100, 100)
	for i := range 100 {
		if !k.Allow("d" + strconv.Itoa(i%1)) {
			t.Fatalf("request %d under the new rate refused", i)
		}
	}
}

func TestAllowN(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := New(10, 100, 4)
	k.now = func() time.Time { return now }
	if !k.AllowN("a", 60) {
		t.Fatal("60 of a burst of 100 refused")
	}
	if k.AllowN("a", 60) {
		t.Fatal("60 more with 40 left allowed")
	}
	// A refusal takes nothing: the 40 left are still there.
	if !k.AllowN("a", 40) {
		t.Fatal("the 40 left refused after a refusal")
	}
	if k.AllowN("a", 1) {
		t.Fatal("a request past the burst allowed")
	}
	now = now.Add(2 * time.Second)
	if !k.AllowN("a", 20) || k.AllowN("a", 1) {
		t.Fatal("2 s at 10 a second is not 20 requests")
	}
	if k.AllowN("b", 101) {
		t.Fatal("more than the burst at once allowed")
	}
}
