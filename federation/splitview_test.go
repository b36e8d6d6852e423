package federation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	cmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
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
			f := newViewsFixture(t, ctx)
			keys, hosts, ledgers, witnesses := f.keys, f.hosts, f.ledgers, f.witnesses
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
	f := newViewsFixture(t, ctx)
	hosts, ledgers, witnesses := f.hosts, f.ledgers, f.witnesses
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

// viewsFixture is three centres, each the witness of the others' logs.
type viewsFixture struct {
	keys      map[string][]byte
	hosts     map[string]host.Host
	ledgers   map[string]*ledger.Ledger
	witnesses map[string]*Witness
	conns     map[string]*cmgr.BasicConnMgr // each host's connection manager
}

// managedHost is a mocknet host with a connection manager of its own.
type managedHost struct {
	host.Host
	cm *cmgr.BasicConnMgr
}

func (h managedHost) ConnManager() connmgr.ConnManager { return h.cm }

func newViewsFixture(t *testing.T, ctx context.Context) viewsFixture {
	t.Helper()
	net := mocknet.New()
	t.Cleanup(func() { net.Close() })
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	f := viewsFixture{keys: map[string][]byte{}, hosts: map[string]host.Host{}, ledgers: map[string]*ledger.Ledger{}, witnesses: map[string]*Witness{}, conns: map[string]*cmgr.BasicConnMgr{}}
	var members []Member
	names := []string{"centre-a", "centre-b", "centre-c"}
	for _, name := range names {
		key := testMemberKey(name)
		f.keys[name] = key
		sk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := net.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := cmgr.NewConnManager(1, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cm.Close() })
		f.hosts[name], f.conns[name] = managedHost{h, cm}, cm
		members = append(members, Member{Name: name, ID: h.ID(), Addrs: []ma.Multiaddr{addr}})
	}
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	charter := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(3), Members: members}
	for _, name := range names {
		l, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: ledger.Origin("test", name), Key: f.keys[name]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		f.ledgers[name] = l
		if f.witnesses[name], err = NewWitness(f.hosts[name], f.keys[name], l, func() Charter { return charter }, nil); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// exchange has each named witness exchange views, in order.
func (f viewsFixture) exchange(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := f.witnesses[name].ExchangeViews(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Views a co-witness took are not sent again while they stand; a change
// on either side is sent, and answered with the other side's views, so a
// split shown after witnesses last compared notes is caught by both at
// their next exchange.
func TestViewsAreSentWhenTheyChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newViewsFixture(t, ctx)
	b, c := f.hosts["centre-b"].ID(), f.hosts["centre-c"].ID()
	sentAt := func(from string, to peer.ID) time.Time {
		w := f.witnesses[from]
		w.sentMu.Lock()
		defer w.sentMu.Unlock()
		return w.viewsSent[to].at
	}
	honest := &testLog{t: t, l: f.ledgers["centre-a"]}
	cp4 := honest.grow(4, "honest")
	if _, err := RequestCosignature(ctx, f.hosts["centre-a"], b, AddRequest{Note: cp4.Note}); err != nil {
		t.Fatal(err)
	}
	f.exchange(t, ctx, "centre-b", "centre-c")
	// Each co-witness is one the connection manager keeps before others.
	if info := f.conns["centre-b"].GetTagInfo(c); info == nil || info.Tags[coWitnessTag] != coWitnessValue {
		t.Fatalf("centre-b's connection manager does not value centre-c as a co-witness: %+v", info)
	}
	first := sentAt("centre-b", c)
	if first.IsZero() {
		t.Fatal("centre-b's views were not taken by centre-c")
	}
	f.exchange(t, ctx, "centre-b")
	if again := sentAt("centre-b", c); !again.Equal(first) {
		t.Fatalf("unchanged views were sent again (at %v, then %v)", first, again)
	}

	// centre-c is shown another history now, after both compared notes.
	fork := newTestLogAt(t, f.keys["centre-a"], ledger.Origin("test", "centre-a"))
	forked := fork.grow(4, "forked")
	if _, err := RequestCosignature(ctx, f.hosts["centre-a"], c, AddRequest{Note: forked.Note}); err != nil {
		t.Fatal(err)
	}
	f.exchange(t, ctx, "centre-c", "centre-b")
	for _, name := range []string{"centre-b", "centre-c"} {
		ev, err := f.ledgers[name].Evidence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) == 0 || ev[0].Origin != ledger.Origin("test", "centre-a") {
			t.Fatalf("%s holds no evidence against centre-a: %+v", name, ev)
		}
	}
}
