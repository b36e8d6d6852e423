package federation

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater admits exactly the peers the current charter lists. The peer is
// known only once the connection is secured, so that is where it decides;
// it also refuses to dial anyone else. The allow-list is swapped whole when
// a new charter version is adopted.
type Gater struct {
	allowed atomic.Pointer[map[peer.ID]struct{}]
	blocked atomic.Pointer[map[peer.ID]time.Time] // members refused until then, whatever the charter says

	log     *slog.Logger // set by Log before the host that uses the gater starts
	mu      sync.Mutex
	refused map[peer.ID]struct{} // logged already; at most maxLoggedRefusals
}

// maxLoggedRefusals bounds the peers whose refusal is remembered, so that
// a stranger dialling with ever new peer IDs grows nothing: past it, a
// refusal is no longer logged.
const maxLoggedRefusals = 1024

// Log has the gater log each refused peer once (its first refused
// connection), so that an operator sees who knocks without a log line per
// attempt.
func (g *Gater) Log(log *slog.Logger) { g.log = log }

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater that admits the given peers.
func NewGater(peers ...peer.ID) *Gater {
	g := &Gater{}
	g.Allow(peers...)
	return g
}

// Allow replaces the allow-list.
func (g *Gater) Allow(peers ...peer.ID) {
	m := make(map[peer.ID]struct{}, len(peers))
	for _, p := range peers {
		m[p] = struct{}{}
	}
	g.allowed.Store(&m)
}

// Allowed reports whether p may connect.
func (g *Gater) Allowed(p peer.ID) bool {
	_, ok := (*g.allowed.Load())[p]
	if b := g.blocked.Load(); ok && b != nil {
		if until, blocked := (*b)[p]; blocked && time.Now().Before(until) {
			return false
		}
	}
	return ok
}

// Block refuses member p until until, though the charter lists it: an
// operator cutting a member off from this centre for a while (an
// incident), the charter unchanged. A zero until unblocks it.
func (g *Gater) Block(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := map[peer.ID]time.Time{}
	if b := g.blocked.Load(); b != nil {
		now := time.Now()
		for q, t := range *b {
			if now.Before(t) {
				m[q] = t
			}
		}
	}
	if until.IsZero() {
		delete(m, p)
	} else {
		m[p] = until
	}
	g.blocked.Store(&m)
}

// Blocked returns the members blocked now, and until when.
func (g *Gater) Blocked() map[peer.ID]time.Time {
	out := map[peer.ID]time.Time{}
	if b := g.blocked.Load(); b != nil {
		now := time.Now()
		for q, t := range *b {
			if now.Before(t) {
				out[q] = t
			}
		}
	}
	return out
}

func (g *Gater) InterceptPeerDial(p peer.ID) bool                 { return g.Allowed(p) }
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.Allowed(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if g.Allowed(p) {
		return true
	}
	why := "refused a connection from a peer that is not a member; later ones are not logged"
	if _, member := (*g.allowed.Load())[p]; member {
		why = "refused a connection from a member this centre's operator blocked; later ones are not logged"
	}
	g.refusedOnce(dir, p, why)
	return false
}

// refusedOnce logs p's first refused connection.
func (g *Gater) refusedOnce(dir network.Direction, p peer.ID, why string) {
	log := g.log
	if log == nil {
		return
	}
	g.mu.Lock()
	_, seen := g.refused[p]
	full := len(g.refused) >= maxLoggedRefusals
	if !seen && !full {
		if g.refused == nil {
			g.refused = map[peer.ID]struct{}{}
		}
		g.refused[p] = struct{}{}
	}
	g.mu.Unlock()
	if !seen && !full {
		log.Warn(why, "peer", p, "direction", dir.String())
	}
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
