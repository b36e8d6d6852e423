package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// It is taken below the system's ephemeral ports where it can, not from
// them (port 0): a centre listens on its port only once the federation
// that names it is founded, and a port from the ephemeral range may by
// then be the source of one of the many connections a federation in one
// process opens (the bench's cores suite failed so, "address already in
// use"). Outgoing connections never take a port below the range. This
// process's ports follow each other from a random start, so that it is
// never given one twice, and two processes seldom meet.
func FreePort() (int, error) {
	if lo, ok := ephemeralLow(); ok && lo > minPort+1000 {
		span := lo - minPort
		next.mu.Lock()
		defer next.mu.Unlock()
		if !next.started {
			next.i, next.started = rand.IntN(span), true
		}
		for range 1000 {
			port := minPort + next.i%span
			next.i++
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				continue // another's: the next one
			}
			return port, l.Close()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// minPort is the least port FreePort hands out below the ephemeral
// range, above the well-known services'.
const minPort = 10000

// next is where FreePort looks for the next port below the range.
var next struct {
	mu      sync.Mutex
	started bool
	i       int
}

// ephemeralLow returns the first of the system's ephemeral ports, where
// the system says.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 || lo > hi {
		return 0, false
	}
	return lo, true
}
