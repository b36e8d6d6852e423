package centre

import (
	"context"
	"errors"
	"testing"
	"time"
)

// retry calls again after each failure, waiting twice as long each time
// up to the last wait, and stops at the first success or when its
// context ends.
func TestRetryBacksOffUntilItSucceeds(t *testing.T) {
	var calls []time.Time
	retry(context.Background(), 10*time.Millisecond, 25*time.Millisecond, func() error {
		calls = append(calls, time.Now())
		if len(calls) < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 4", len(calls))
	}
	for i, least := range []time.Duration{10, 20, 25} {
		if gap := calls[i+1].Sub(calls[i]); gap < least*time.Millisecond {
			t.Errorf("wait %d: %v, want at least %v", i+1, gap, least*time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	retry(ctx, time.Millisecond, time.Millisecond, func() error {
		if n++; n == 3 {
			cancel()
		}
		return errors.New("never")
	})
	if n != 3 {
		t.Fatalf("%d calls after the context ended at the third, want 3", n)
	}
}
