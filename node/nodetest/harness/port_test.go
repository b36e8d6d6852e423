package harness

import (
	"fmt"
	"net"
	"testing"
)

// FreePort hands out ports below the ephemeral range, each once, that a
// node can listen on.
func TestFreePort(t *testing.T) {
	lo, below := ephemeralLow()
	seen := map[int]bool{}
	for range 200 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		if below && lo > minPort+1000 && (port < minPort || port >= lo) {
			t.Fatalf("port %d outside [%d, %d), below the ephemeral range", port, minPort, lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("listening on the port handed out: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
