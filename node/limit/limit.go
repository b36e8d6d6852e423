// Package limit keeps token buckets by key: how the HTTP API bounds each
// client and each patient key, and how a protocol bounds each member. Its
// memory is bounded too: past its table's size, idle buckets are
// forgotten, and while every bucket is busy a new key is refused rather
// than tracked.
package limit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a token bucket per key: each key may make Burst requests at
// once, then one every 1/PerSecond seconds.
type Keyed struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	max   int
	now   func() time.Time
	m     map[string]*rate.Limiter
}

// New returns buckets of perSecond requests, burst at once, for at most
// max keys at a time.
func New(perSecond float64, burst, max int) *Keyed {
	return &Keyed{every: rate.Limit(perSecond), burst: burst, max: max, now: time.Now, m: map[string]*rate.Limiter{}}
}

// Allow takes one request of key from its bucket, and reports whether
// there was one to take.
func (k *Keyed) Allow(key string) bool { return k.AllowN(key, 1) }

// AllowN takes n requests of key from its bucket at once, and reports
// whether there were n to take; when there were not, it takes none.
func (k *Keyed) AllowN(key string, n int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	l := k.m[key]
	if l == nil {
		if len(k.m) >= k.max {
			k.forgetIdle(now)
			if len(k.m) >= k.max {
				return false // every bucket busy: a new key waits its turn
			}
		}
		l = rate.NewLimiter(k.every, k.burst)
		k.m[key] = l
	}
	return l.AllowN(now, n)
}

// forgetIdle drops the buckets that have filled up again: forgetting one
// changes nothing for its key.
func (k *Keyed) forgetIdle(now time.Time) {
	for key, l := range k.m {
		if l.TokensAt(now) >= float64(k.burst) {
			delete(k.m, key)
		}
	}
}

// SetRate changes the rate and burst of every bucket, such as when the
// charter that sets them changes.
func (k *Keyed) SetRate(perSecond float64, burst int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if rate.Limit(perSecond) == k.every && burst == k.burst {
		return
	}
	k.every, k.burst = rate.Limit(perSecond), burst
	now := k.now()
	for _, l := range k.m {
		l.SetLimitAt(now, k.every)
		l.SetBurstAt(now, burst)
	}
}

// Len returns how many keys the buckets track now.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
