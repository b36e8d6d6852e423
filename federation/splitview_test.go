package federation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/node/ledger"
)

// A log shows one history to one witness and another to a second. Neither
// can tell alone; once they exchange views, both hold evidence.
func TestSplitViewIsDetected(t *testing.T) {
	for _, tt := range []struct {
		name           string
		forkedSize     int // the size of the history shown to centre-c
		wantEvidenceAt []string
	}{
		{"same size, two roots", 6, []string{"centre-b", "centre-c"}},
		{"the other history is longer", 9, []string{"centre-b", "centre-c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			net := mocknet.New()
			defer net.Close()
			addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
			names := []string{"centre-a", "centre-b", "centre-c"}
			keys := map[string][]byte{}
			hosts := map[string]host.Host{}
			var members []Member
			for _, name := range names {
				key := testMemberKey(name)
				keys[name] = key
				sk, err := crypto.UnmarshalEd25519PrivateKey(key)
				if err != nil {
					t.Fatal(err)
				}
				h, err := net.AddPeer(sk, addr)
				if err != nil {
					t.Fatal(err)
				}
				hosts[name] = h
				members = append(members, Member{Name: name, ID: h.ID(), Addrs: []ma.Multiaddr{addr}})
			}
			if err := net.LinkAll(); err != nil {
				t.Fatal(err)
			}
			charter := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(3), Members: members}
			ledgers := map[string]*ledger.Ledger{}
			witnesses := map[string]*Witness{}
			for _, name := range names {
				l, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: ledger.Origin("test", name), Key: keys[name]})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				ledgers[name] = l
				if witnesses[name], err = NewWitness(hosts[name], keys[name], l, func() Charter { return charter }, nil); err != nil {
					t.Fatal(err)
				}
			}
			// centre-a's real ledger, and a fork of it made with the same key.
			honest := &testLog{t: t, l: ledgers["centre-a"]}
			shownToB := honest.grow(6, "honest")
			honest.grow(6, "more") // the real log grows on
			fork := newTestLogAt(t, keys["centre-a"], ledger.Origin("test", "centre-a"))
			shownToC := fork.grow(tt.forkedSize, "forked")

			if _, err := RequestCosignature(ctx, hosts["centre-a"], hosts["centre-b"].ID(), AddRequest{Note: shownToB.Note}); err != nil {
				t.Fatal(err)
			}
			if _, err := RequestCosignature(ctx, hosts["centre-a"], hosts["centre-c"].ID(), AddRequest{Note: shownToC.Note}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"centre-b", "centre-c"} {
				if err := witnesses[name].ExchangeViews(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range tt.wantEvidenceAt {
				ev, err := ledgers[name].Evidence(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(ev) == 0 || ev[0].Origin != ledger.Origin("test", "centre-a") {
					t.Fatalf("%s holds no evidence against centre-a: %+v", name, ev)
				}
			}
		})
	}
}

// With one history, exchanging views raises nothing.
func TestConsistentViewsRaiseNothing(t *testing.T) {
	ctx := context.Background()
	net := mocknet.New()
	defer net.Close()
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	var members []Member
	hosts := map[string]host.Host{}
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		sk, _ := crypto.UnmarshalEd25519PrivateKey(testMemberKey(name))
		h, err := net.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		hosts[name] = h
		members = append(members, Member{Name: name, ID: h.ID(), Addrs: []ma.Multiaddr{addr}})
	}
	net.LinkAll()
	charter := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(3), Members: members}
	ledgers := map[string]*ledger.Ledger{}
	witnesses := map[string]*Witness{}
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		l, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: ledger.Origin("test", name), Key: testMemberKey(name)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ledgers[name] = l
		witnesses[name], _ = NewWitness(hosts[name], testMemberKey(name), l, func() Charter { return charter }, nil)
	}
	log := &testLog{t: t, l: ledgers["centre-a"]}
	cp4 := log.grow(4, "x")
	if _, err := RequestCosignature(ctx, hosts["centre-a"], hosts["centre-b"].ID(), AddRequest{Note: cp4.Note}); err != nil {
		t.Fatal(err)
	}
	cp7 := log.grow(3, "y")
	if _, err := RequestCosignature(ctx, hosts["centre-a"], hosts["centre-c"].ID(), AddRequest{Note: cp7.Note}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"centre-b", "centre-c"} {
		if err := witnesses[name].ExchangeViews(ctx); err != nil {
			t.Fatal(err)
		}
		if ev, _ := ledgers[name].Evidence(ctx); len(ev) != 0 {
			t.Fatalf("%s raised evidence against a consistent log: %+v", name, ev)
		}
	}
}
