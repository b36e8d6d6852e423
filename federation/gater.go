package federation

import (
	"sync/atomic"

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
}

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
	return ok
}

func (g *Gater) InterceptPeerDial(p peer.ID) bool                 { return g.Allowed(p) }
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.Allowed(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.Allowed(p)
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
