//go:build medfedfaults

package clock

import (
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// pollEvery is how often the file FaultEnv names is read: a write to it
// is a jump of the process's wall clock within that time.
const pollEvery = 50 * time.Millisecond

var (
	offset atomic.Int64 // nanoseconds
	said   string       // the last problem reported, reported once
)

func init() {
	path := os.Getenv(FaultEnv)
	if path == "" {
		return
	}
	read(path)
	go func() {
		for range time.Tick(pollEvery) {
			read(path)
		}
	}()
}

// read sets the offset from the file at path.
func read(path string) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		offset.Store(0)
		return
	}
	var d time.Duration
	if err == nil {
		d, err = time.ParseDuration(string(bytes.TrimSpace(bytes.TrimPrefix(b, []byte("+")))))
	}
	if err != nil {
		if err.Error() != said { // once per problem, not at every poll
			fmt.Fprintf(os.Stderr, "medfed: %s: %v\n", FaultEnv, err)
			said = err.Error()
		}
		return
	}
	said = ""
	offset.Store(int64(d))
}

func now() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
