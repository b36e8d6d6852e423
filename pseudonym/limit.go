package pseudonym

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// limiter allows each requester at most limit evaluations per window, as
// a token bucket: a requester starts with limit tokens, each evaluation
// takes one, and tokens come back at limit per window. A bulk join can use
// the whole allowance at once; a brute-force attempt is held to the rate.
type limiter struct {
	limit  float64
	window time.Duration

	mu      sync.Mutex
	buckets map[peer.ID]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: float64(limit), window: window, buckets: map[peer.ID]*bucket{}}
}

// refill brings b up to date at now and returns it.
func (l *limiter) refill(id peer.ID, now time.Time) *bucket {
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{tokens: l.limit, at: now}
		l.buckets[id] = b
	}
	if dt := now.Sub(b.at); dt > 0 {
		b.tokens = min(l.limit, b.tokens+l.limit*dt.Seconds()/l.window.Seconds())
		b.at = now
	}
	return b
}

// take takes n tokens for id at now, or none: then it returns how many
// are available and how long until n are.
func (l *limiter) take(id peer.ID, n int, now time.Time) (ok bool, available int, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(id, now)
	if float64(n) <= b.tokens {
		b.tokens -= float64(n)
		return true, int(b.tokens), 0
	}
	if float64(n) > l.limit {
		return false, int(b.tokens), -1
	}
	missing := float64(n) - b.tokens
	return false, int(b.tokens), time.Duration(missing / l.limit * float64(l.window))
}

// give returns n tokens taken for an evaluation that did not happen.
func (l *limiter) give(id peer.ID, n int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(id, now)
	b.tokens = min(l.limit, b.tokens+float64(n))
}

// spent records n evaluations done for id at a past time at, as read back
// from the ledger after a restart; the bucket may go negative, which the
// refill then pays back.
func (l *limiter) spent(id peer.ID, n int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(id, at)
	b.tokens -= float64(n)
}
