package directory

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// testFed is a federation of real libp2p hosts on 127.0.0.1, each running a
// directory on its own SQLite file. Centres can be stopped and started
// again with the same key and database.
type testFed struct {
	tb    testing.TB
	dir   string
	keys  []crypto.PrivKey
	ids   []peer.ID
	hosts []host.Host
	dirs  []*Directory

	tweak func(*Options) // applied to every centre's options

	mu      sync.Mutex
	members []peer.ID // the charter
}

func newTestFed(tb testing.TB, n int) *testFed {
	tb.Helper()
	return newTestFedWith(tb, n, 0)
}

// newTestFedWith starts n centres with the given replication (0: the
// default).
func newTestFedWith(tb testing.TB, n, replication int) *testFed {
	tb.Helper()
	return newTestFedTweaked(tb, n, func(o *Options) { o.Replication = replication })
}

// newTestFedTweaked starts n centres, their options tweaked.
func newTestFedTweaked(tb testing.TB, n int, tweak func(*Options)) *testFed {
	tb.Helper()
	f := &testFed{tb: tb, dir: tb.TempDir(), hosts: make([]host.Host, n), dirs: make([]*Directory, n), tweak: tweak}
	for range n {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(sk)
		if err != nil {
			tb.Fatal(err)
		}
		f.keys = append(f.keys, sk)
		f.ids = append(f.ids, id)
	}
	f.members = append(f.members, f.ids...)
	for i := range n {
		f.start(i)
	}
	f.connect()
	tb.Cleanup(func() {
		for i := range f.hosts {
			f.stop(i)
		}
	})
	return f
}

// memberList is the Members function of every directory: the charter's
// members with the addresses of those running.
func (f *testFed) memberList() []peer.AddrInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []peer.AddrInfo
	for _, id := range f.members {
		ai := peer.AddrInfo{ID: id}
		for _, h := range f.hosts {
			if h != nil && h.ID() == id {
				ai.Addrs = h.Addrs()
			}
		}
		out = append(out, ai)
	}
	return out
}

func (f *testFed) start(i int) {
	f.tb.Helper()
	h, err := libp2p.New(
		libp2p.Identity(f.keys[i]),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		f.tb.Fatal(err)
	}
	opts := Options{
		Federation: "test-fed",
		Path:       filepath.Join(f.dir, fmt.Sprintf("centre-%d.db", i)),
		Members:    f.memberList,
	}
	f.tweak(&opts)
	d, err := New(h, opts)
	if err != nil {
		h.Close()
		f.tb.Fatal(err)
	}
	f.mu.Lock()
	f.hosts[i], f.dirs[i] = h, d
	f.mu.Unlock()
}

func (f *testFed) stop(i int) {
	f.tb.Helper()
	f.mu.Lock()
	h, d := f.hosts[i], f.dirs[i]
	f.hosts[i], f.dirs[i] = nil, nil
	f.mu.Unlock()
	if d == nil {
		return
	}
	if err := d.Close(); err != nil {
		f.tb.Errorf("close directory %d: %v", i, err)
	}
	if err := h.Close(); err != nil {
		f.tb.Errorf("close host %d: %v", i, err)
	}
}

// connect connects every running centre to every other and refreshes the
// routing tables, as the node's membership loop does.
func (f *testFed) connect() {
	f.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	members := f.memberList()
	var wg sync.WaitGroup
	for i, h := range f.hosts {
		if h == nil {
			continue
		}
		wg.Go(func() {
			for _, m := range members {
				if m.ID != h.ID() && len(m.Addrs) > 0 {
					f.dial(ctx, i, h, m)
				}
			}
		})
	}
	wg.Wait()
	running := 0
	for _, h := range f.hosts {
		if h != nil {
			running++
		}
	}
	for i, d := range f.dirs {
		if d == nil {
			continue
		}
		for d.RoutingTableSize() < running-1 {
			// A centre just restarted may have its connections before
			// the members in its table (identify runs first): a refresh
			// of an empty table fails, and is tried again.
			if err := d.Refresh(ctx); err != nil && d.RoutingTableSize() > 0 {
				f.tb.Fatalf("centre %d refresh: %v", i, err)
			}
			if d.RoutingTableSize() < running-1 {
				select {
				case <-ctx.Done():
					f.tb.Fatalf("centre %d: routing table holds %d of %d", i, d.RoutingTableSize(), running-1)
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
}

// dial connects h to m, retrying while the DHT's own dial to the same
// peer holds a dial backoff.
func (f *testFed) dial(ctx context.Context, i int, h host.Host, m peer.AddrInfo) {
	for {
		err := h.Connect(ctx, m)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			f.tb.Errorf("centre %d connect %s: %v", i, m.ID, err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pseudonyms(n int) []ledger.Pseudonym {
	ps := make([]ledger.Pseudonym, n)
	for i := range ps {
		rand.Read(ps[i][:])
	}
	return ps
}
