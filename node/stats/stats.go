// Package stats counts what a centre's services do, for the operators'
// metrics: counters and histograms cheap enough to update on every
// append, lookup and query, read as snapshots by the metrics adapter
// (node/metrics), which alone knows how they are exported. It holds
// numbers only: never an identifier, a name or a payload.
package stats

import (
	"math"
	"slices"
	"sync/atomic"
)

// Counter counts events since the process started. Its zero value is
// ready to use.
type Counter struct{ n atomic.Uint64 }

// Add counts n events.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Inc counts one event.
func (c *Counter) Inc() { c.n.Add(1) }

// Load returns the count.
func (c *Counter) Load() uint64 { return c.n.Load() }

// Histogram counts observations into fixed buckets, as Prometheus's
// histograms do: bucket i counts the observations of at most Bounds[i].
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, and one past the last
	sum    atomic.Uint64   // float64 bits
}

// NewHistogram returns a histogram over the bounds, which must rise.
func NewHistogram(bounds ...float64) *Histogram {
	if !slices.IsSorted(bounds) {
		panic("stats: histogram bounds must rise")
	}
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one observation.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Snapshot is a histogram as read at one moment.
type Snapshot struct {
	Bounds     []float64
	Cumulative []uint64 // observations of at most Bounds[i]
	Count      uint64
	Sum        float64
}

// Snapshot reads the histogram. Observations made while it reads may be
// counted in Count but not yet in a bucket, never the other way round.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds))}
	var n uint64
	for i := range h.bounds {
		n += h.counts[i].Load()
		s.Cumulative[i] = n
	}
	s.Count = n + h.counts[len(h.bounds)].Load()
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}

// LatencyBounds are the buckets, in seconds, of a latency across the
// federation: from a millisecond to a minute.
var LatencyBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// SizeBounds are the buckets of a count of things done together, such as
// the entries of one commit.
var SizeBounds = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536}
