package centre

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	cmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medfed/medfed/directory"
)

// PeerID returns the libp2p peer ID of a centre key: the centre's ID in
// the federation.
func PeerID(key ed25519.PrivateKey) (peer.ID, error) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(sk)
}

// Per-peer stream limits of the protocols. Every medfed protocol answers
// one request per stream, within seconds, so a member needs few at once.
// The directory's Kademlia reader takes up to 4 MiB of memory for a
// message a peer only claims to send, so its streams bound that memory
// (256 × 4 MiB per member); fewer starved go-libp2p-kad-dht's sweep
// provider, which announced in parallel batches to each replica (the
// directory benchmark lost announcements at 16), and the placement that
// replaced it sends over one stream per replica.
const (
	protocolPeerStreams = 64
	kadPeerStreams      = 256
)

// kadProtocol is the directory's Kademlia protocol.
const kadProtocol = directory.ProtocolPrefix + "/kad/1.0.0"

// hostLimits are the resource manager's limits: a federation has tens of
// members, not thousands of strangers, so a centre needs few connections;
// every protocol, libp2p's own and the directory's Kademlia included, is
// bounded in streams and memory in all and per peer; everything not named
// here keeps libp2p's scaled default.
var hostLimits = rcmgr.PartialLimitConfig{
	ProtocolDefault: rcmgr.ResourceLimits{
		Streams:         2048,
		StreamsInbound:  1024,
		StreamsOutbound: 1024,
		Memory:          256 << 20,
	},
	ProtocolPeerDefault: rcmgr.ResourceLimits{
		Streams:         2 * protocolPeerStreams,
		StreamsInbound:  protocolPeerStreams,
		StreamsOutbound: protocolPeerStreams,
		Memory:          64 << 20,
	},
	Protocol: map[protocol.ID]rcmgr.ResourceLimits{
		kadProtocol: {Streams: 8192, StreamsInbound: 4096, StreamsOutbound: 4096, Memory: 1 << 30},
	},
	ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
		kadProtocol: {
			Streams:         2 * kadPeerStreams,
			StreamsInbound:  kadPeerStreams,
			StreamsOutbound: kadPeerStreams,
			Memory:          kadPeerStreams << 22, // 4 MiB each
		},
	},
	System: rcmgr.ResourceLimits{
		Conns:           512,
		ConnsInbound:    256,
		ConnsOutbound:   256,
		Streams:         8192,
		StreamsInbound:  4096,
		StreamsOutbound: 4096,
		FD:              1024,
		Memory:          1 << 30,
	},
	Transient: rcmgr.ResourceLimits{
		Conns:   64,
		Streams: 256,
		Memory:  64 << 20,
	},
}

// NewConnManager is the connection manager a centre's host runs: past
// 192 connections it closes the least useful down to 64 (kad-dht and
// gossip protect the peers they need), sparing those of the last minute.
// A federation of thousands would otherwise keep a connection to every
// member it ever asked something.
func NewConnManager() (*cmgr.BasicConnMgr, error) {
	cm, err := cmgr.NewConnManager(64, 192, cmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return cm, nil
}

// newHost starts the centre's libp2p host: its identity is the centre key,
// it listens where the config says, admits only whom gater admits, and
// runs no relay. With a pre-shared key it is a private network, which
// works over TCP only (QUIC cannot), so the config must list only TCP.
// With a registerer, go-libp2p's own metrics (the resource manager's
// connections, streams by protocol and memory, the swarm's dials and
// connections) are registered with it; without, none are kept.
func newHost(cfg P2PConfig, key ed25519.PrivateKey, gater connmgr.ConnectionGater, reg prometheus.Registerer) (host.Host, error) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return nil, err
	}
	limiter := rcmgr.NewFixedLimiter(hostLimits.Build(rcmgr.DefaultLimits.AutoScale()))
	// Without a registerer, without metrics: libp2p.DisableMetrics does
	// not reach a resource manager built here, which would otherwise
	// trace every scope's changes into Prometheus counters nobody reads
	// (3 % of a busy centre's CPU).
	var rmOpts []rcmgr.Option
	if reg == nil {
		rmOpts = append(rmOpts, rcmgr.WithMetricsDisabled())
	}
	rm, err := rcmgr.NewResourceManager(limiter, rmOpts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := NewConnManager()
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.ConnectionGater(gater),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		// Without SO_REUSEPORT: with it, a second centre configured on a
		// port in use would share it (and dial itself) instead of failing.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
	}
	if reg == nil {
		opts = append(opts, libp2p.DisableMetrics())
	} else {
		opts = append(opts, libp2p.PrometheusRegisterer(reg))
	}
	if cfg.PSKFile != "" {
		psk, err := readPSK(cfg.PSKFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else if listensQUIC(cfg.Listen) {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p.listen %s: %w (is another node or program using the port?)", strings.Join(cfg.Listen, ", "), err)
	}
	return h, nil
}

func listensQUIC(addrs []string) bool {
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue // Validate has refused it already
		}
		if _, err := m.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			return true
		}
	}
	return false
}

// readPSK reads a pre-shared key in libp2p's swarm key format.
func readPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("p2p.psk-file: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("p2p.psk-file %s: %w", path, err)
	}
	return psk, nil
}

// NewPSK returns a new pre-shared key in libp2p's swarm key format, for
// p2p.psk-file. Every member of a private federation uses the same one.
func NewPSK() ([]byte, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	return []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(k[:]) + "\n"), nil
}
