package centre

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/medfed/medfed/federation"
)

const echoProtocol = protocol.ID("/medfed/test-echo/1")

func seedKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func startMember(t *testing.T, key ed25519.PrivateKey, psk string, gater *federation.Gater) host.Host {
	t.Helper()
	h, err := newHost(P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PSKFile: psk}, key, gater, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(echoProtocol, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	return h
}

// echo opens a stream from h to p and checks a round trip.
func echo(ctx context.Context, h host.Host, p peer.AddrInfo) error {
	if err := h.Connect(ctx, p); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, p.ID, echoProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Write([]byte("ping")); err != nil {
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if string(got) != "ping" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func writePSK(t *testing.T) string {
	t.Helper()
	b, err := NewPSK()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A host that the charter does not list cannot open a stream to a member,
// whether or not it has the federation's pre-shared key; members can.
func TestOnlyCharterMembersCanOpenStreams(t *testing.T) {
	psk := writePSK(t)
	tests := []struct {
		name        string
		memberPSK   string
		outsiderPSK string
	}{
		{"open network", "", ""},
		{"private network, outsider without the key", psk, ""},
		{"private network, outsider with the key", psk, psk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ka, kb := seedKey("a"), seedKey("b")
			ida, _ := PeerID(ka)
			idb, _ := PeerID(kb)
			a := startMember(t, ka, tt.memberPSK, federation.NewGater(ida, idb))
			b := startMember(t, kb, tt.memberPSK, federation.NewGater(ida, idb))

			if err := echo(ctx, b, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
				t.Fatalf("member b to member a: %v", err)
			}

			// The outsider is a plain libp2p host that lets anyone in.
			opts := []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay()}
			if tt.outsiderPSK != "" {
				key, err := readPSK(tt.outsiderPSK)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, libp2p.PrivateNetwork(key))
			}
			o, err := libp2p.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			for _, m := range []host.Host{a, b} {
				octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
				err := echo(octx, o, peer.AddrInfo{ID: m.ID(), Addrs: m.Addrs()})
				ocancel()
				if err == nil {
					t.Fatalf("outsider opened a stream to member %s", m.ID())
				}
				if len(m.Network().ConnsToPeer(o.ID())) != 0 {
					t.Fatalf("member %s kept a connection from the outsider", m.ID())
				}
			}
			// Nor can a member be made to dial the outsider.
			if err := a.Connect(ctx, peer.AddrInfo{ID: o.ID(), Addrs: o.Addrs()}); err == nil {
				t.Fatal("member dialled a non-member")
			}
		})
	}
}

// TestAbuseStreamFlood: a member opens 32 more Kademlia streams to a
// centre than a peer may hold, and holds them open (the reader
// would take up to 4 MiB for each message it is promised). The resource
// manager admits kadPeerStreams and resets the rest; meanwhile another
// protocol's stream from the same member is served. A protocol the
// centre never named is bounded by the default per-protocol limits too.
func TestAbuseStreamFlood(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ka, kb := seedKey("a"), seedKey("b")
	ida, _ := PeerID(ka)
	idb, _ := PeerID(kb)
	a := startMember(t, ka, "", federation.NewGater(ida, idb))
	// Member b runs a host of its own making, with no limits of its own.
	sk, err := crypto.UnmarshalEd25519PrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	b, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	held := make(chan struct{})
	t.Cleanup(func() { close(held) })
	a.SetStreamHandler(kadProtocol, func(s network.Stream) {
		<-held // a reader waiting for a message that never comes
		s.Reset()
	})
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var (
		open    []network.Stream
		refused int
	)
	for range kadPeerStreams + 32 {
		s, err := b.NewStream(ctx, a.ID(), kadProtocol)
		if err != nil {
			refused++ // reset by centre a at negotiation
			continue
		}
		open = append(open, s)
		s.Write([]byte{0}) // the start of a message, never finished
	}
	inbound := func() int {
		var n int
		a.Network().ResourceManager().ViewProtocol(kadProtocol, func(s network.ProtocolScope) error {
			n = s.Stat().NumStreamsInbound
			return nil
		})
		return n
	}
	// A stream being refused counts at the protocol's scope for a moment,
	// until the peer's scope turns it away: wait for the count to settle
	// (the same for ten reads in a row), then it must be the limit.
	deadline := time.Now().Add(10 * time.Second)
	n, same := inbound(), 0
	for same < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if m := inbound(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	if n != kadPeerStreams {
		t.Fatalf("centre a holds %d Kademlia streams of member b, want the limit %d", n, kadPeerStreams)
	}
	// The rest were reset by centre a: on this host's side, the stream
	// fails once its negotiation is answered.
	by := time.Now().Add(500 * time.Millisecond) // one deadline for all
	for _, s := range open {
		s.SetReadDeadline(by)
		if _, err := s.Read(make([]byte, 1)); err != nil && !os.IsTimeout(err) {
			refused++
		}
	}
	if refused != 32 {
		t.Fatalf("%d of the 32 streams beyond the limit were refused", refused)
	}
	if err := echo(ctx, b, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatalf("another protocol under the flood: %v", err)
	}
	for _, s := range open {
		s.Reset()
	}
}
