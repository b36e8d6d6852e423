package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

type memStore struct {
	mu        sync.Mutex
	adopted   [][]byte
	approvals int
}

func (s *memStore) Adopt(_ context.Context, note []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adopted = append(s.adopted, note)
	return nil
}

func (s *memStore) Approve(context.Context, uint64, [32]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approvals++
	return nil
}

func testMemberKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

// A member sends the charter protocol malformed, forged, unknown and
// oversized requests: each is refused and nothing changes.
func TestMembershipRefusesBadRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := mocknet.New()
	defer net.Close()
	keys := map[string]ed25519.PrivateKey{"centre-a": testMemberKey("a"), "centre-b": testMemberKey("b"), "centre-z": testMemberKey("z")}
	var members []Member
	hosts := map[string]peer.ID{}
	for _, name := range []string{"centre-a", "centre-b"} {
		sk, err := crypto.UnmarshalEd25519PrivateKey(keys[name])
		if err != nil {
			t.Fatal(err)
		}
		h, err := net.AddPeer(sk, ma.StringCast("/ip4/127.0.0.1/tcp/4001"))
		if err != nil {
			t.Fatal(err)
		}
		hosts[name] = h.ID()
		members = append(members, Member{Name: name, ID: h.ID(), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}})
	}
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	v1 := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(2), Members: members}
	note, err := Sign(v1, nil, keys["centre-a"])
	if err != nil {
		t.Fatal(err)
	}
	if note, err = Sign(v1, note, keys["centre-b"]); err != nil {
		t.Fatal(err)
	}
	store := &memStore{}
	a, err := NewMembership(net.Host(hosts["centre-a"]), State{Chain: [][]byte{note}}, Options{Key: keys["centre-a"], Store: store, Gater: NewGater()})
	if err != nil {
		t.Fatal(err)
	}
	b := net.Host(hosts["centre-b"])
	if err := b.Connect(ctx, peer.AddrInfo{ID: hosts["centre-a"]}); err != nil {
		t.Fatal(err)
	}

	// A forged version 2: centre-z added, "approved" by a key that is not a member's.
	v2, err := v1.WithMember(Member{Name: "centre-z", ID: mustPeerID(t, keys["centre-z"]), Addrs: members[0].Addrs})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := Sign(v2, nil, keys["centre-z"])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		op      byte
		payload []byte
		refusal string
	}{
		{"unknown operation", 9, []byte("x"), "unknown operation"},
		{"chain from version 0", opChain, encodeVersion(0), "no version 0"},
		{"chain request of the wrong size", opChain, []byte{1}, "version of 1 bytes"},
		{"garbage proposal", opPropose, []byte("hello"), "malformed"},
		{"proposal signed by a non-member", opPropose, forged, "signature"},
		{"forged adoption", opAdopt, forged, "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Ask(ctx, b, hosts["centre-a"], tt.op, tt.payload)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.refusal) {
				t.Fatalf("answer %v, want a refusal mentioning %q", err, tt.refusal)
			}
		})
	}
	t.Run("oversized frame", func(t *testing.T) {
		if _, err := Ask(ctx, b, hosts["centre-a"], opPropose, bytes.Repeat([]byte{'x'}, MaxCharterNote+17)); err == nil {
			t.Fatal("an oversized frame was answered")
		}
	})
	chain, err := FetchChain(ctx, b, hosts["centre-a"])
	if err != nil || len(chain) != 1 || !bytes.Equal(chain[0], note) {
		t.Fatalf("chain after bad requests: %d notes, %v", len(chain), err)
	}
	if a.Current().Version != 1 || len(store.adopted) != 0 || store.approvals != 0 {
		t.Fatalf("bad requests changed the state: version %d, %d adopted, %d approvals", a.Current().Version, len(store.adopted), store.approvals)
	}
}

func mustPeerID(t *testing.T, key ed25519.PrivateKey) peer.ID {
	t.Helper()
	id, err := PeerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
