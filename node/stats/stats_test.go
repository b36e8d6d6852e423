package stats_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/medfed/medfed/node/stats"
)

// Observations land in the first bucket whose bound holds them, the
// snapshot's buckets are cumulative, and the count and sum hold every
// observation, those past the last bound included, however many
// goroutines observe at once.
func TestHistogramBuckets(t *testing.T) {
	h := stats.NewHistogram(1, 10, 100)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, v := range []float64{0.5, 1, 5, 50, 500} {
				h.Observe(v)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if want := []uint64{16, 24, 32}; !slices.Equal(s.Cumulative, want) {
		t.Errorf("cumulative buckets %v, want %v", s.Cumulative, want)
	}
	if s.Count != 40 || s.Sum != 8*556.5 {
		t.Errorf("count %d sum %v, want 40 and %v", s.Count, s.Sum, 8*556.5)
	}
}

func TestCounter(t *testing.T) {
	var c stats.Counter
	c.Inc()
	c.Add(41)
	if c.Load() != 42 {
		t.Errorf("counter %d, want 42", c.Load())
	}
}

// Bounds that do not rise are a programming error, caught at once.
func TestHistogramRefusesFallingBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("falling bounds accepted")
		}
	}()
	stats.NewHistogram(10, 1)
}
