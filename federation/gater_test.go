package federation

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// syncBuffer is a log destination safe for the gater's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A stranger's connections are refused, and logged once per peer: an
// operator sees who knocks, a stranger knocking again and again (or with
// ever new peer IDs) makes neither the log nor the gater grow.
func TestAbuseGaterLogsEachStrangerOnce(t *testing.T) {
	member, stranger := peer.ID("member"), peer.ID("stranger")
	g := NewGater(member)
	logs := &syncBuffer{}
	g.Log(slog.New(slog.NewTextHandler(logs, nil)))
	if !g.InterceptSecured(network.DirInbound, member, nil) {
		t.Fatal("a member was refused")
	}
	for range 100 {
		if g.InterceptSecured(network.DirInbound, stranger, nil) {
			t.Fatal("a stranger was let in")
		}
	}
	if n := strings.Count(logs.String(), "not a member"); n != 1 {
		t.Fatalf("a stranger refused 100 times is logged %d times, want once:\n%s", n, logs)
	}
	for i := range 3 * maxLoggedRefusals {
		g.InterceptSecured(network.DirInbound, peer.ID(fmt.Sprintf("stranger-%d", i)), nil)
	}
	if n := strings.Count(logs.String(), "not a member"); n != maxLoggedRefusals || len(g.refused) != maxLoggedRefusals {
		t.Fatalf("strangers with new IDs: %d log lines and %d remembered, want both %d", n, len(g.refused), maxLoggedRefusals)
	}
}

// A blocked member is refused until its block ends or is lifted; the
// others are not touched, and a block does not admit a non-member.
func TestGaterBlocksAMemberForAWhile(t *testing.T) {
	a, b, stranger := peer.ID("member a"), peer.ID("member b"), peer.ID("stranger")
	g := NewGater(a, b)
	g.Block(a, time.Now().Add(time.Hour))
	g.Block(stranger, time.Now().Add(time.Hour))
	if g.Allowed(a) || !g.Allowed(b) || g.Allowed(stranger) {
		t.Fatalf("blocked a: a %t, b %t, stranger %t", g.Allowed(a), g.Allowed(b), g.Allowed(stranger))
	}
	if got := g.Blocked(); len(got) != 2 {
		t.Fatalf("blocked: %v", got)
	}
	g.Block(a, time.Time{})
	if !g.Allowed(a) {
		t.Fatal("a unblocked is still refused")
	}
	g.Block(b, time.Now().Add(-time.Second)) // a block already over
	if !g.Allowed(b) || len(g.Blocked()) != 1 {
		t.Fatalf("a block in the past: b %t, blocked %v", g.Allowed(b), g.Blocked())
	}
}
