//go:build medfedfaults

package clock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The offset file moves the clock, a bad file leaves it where it was, and
// a missing one puts it back.
func TestTheFaultFileMovesTheClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		read(path)
	}
	skew := func() time.Duration { return Now().Sub(time.Now().Round(0)).Round(time.Minute) }
	write("+10m\n")
	if got := skew(); got != 10*time.Minute {
		t.Fatalf("after +10m the clock is %v ahead", got)
	}
	write("ten minutes")
	if got := skew(); got != 10*time.Minute {
		t.Fatalf("after a bad file the clock is %v ahead, want it unchanged", got)
	}
	write("-3m")
	if got := skew(); got != -3*time.Minute {
		t.Fatalf("after -3m the clock is %v ahead", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	read(path)
	if got := skew(); got != 0 {
		t.Fatalf("with the file gone the clock is %v ahead", got)
	}
}
