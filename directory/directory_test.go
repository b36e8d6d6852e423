package directory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/node/ledger"
)

// holdings announces each pseudonym from the centres given for it.
type holdings map[ledger.Pseudonym][]int

func (f *testFed) announce(h holdings) {
	f.tb.Helper()
	by := map[int][]ledger.Pseudonym{}
	for p, centres := range h {
		for _, c := range centres {
			by[c] = append(by[c], p)
		}
	}
	for c, ps := range by {
		if err := f.dirs[c].Announce(context.Background(), ps...); err != nil {
			f.tb.Fatalf("centre %d announce: %v", c, err)
		}
	}
}

// expect waits until a lookup of every pseudonym from every running centre
// returns exactly its holders, complete; it fails the test with the last
// discrepancy after a minute.
func (f *testFed) expect(h holdings) {
	f.tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		problem := ""
	check:
		for p, centres := range h {
			want := make([]peer.ID, len(centres))
			for i, c := range centres {
				want[i] = f.ids[c]
			}
			slices.Sort(want)
			for i, d := range f.dirs {
				if d == nil {
					continue
				}
				res, err := d.Lookup(ctx, p)
				if err != nil || !slices.Equal(res.Holders, want) {
					problem = fmt.Sprintf("lookup of %s from centre %d: holders %v, err %v; want %v", p, i, res.Holders, err, want)
					break check
				}
			}
		}
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			f.tb.Fatal(problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// heldAt has every pseudonym of ps held at the same centres.
func heldAt(ps []ledger.Pseudonym, centres ...int) holdings {
	h := holdings{}
	for _, p := range ps {
		h[p] = centres
	}
	return h
}

func centres(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestLookupFindsEveryHolder(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	ps := pseudonyms(30)
	h := holdings{}
	for i, p := range ps {
		switch i % 3 {
		case 0:
			h[p] = []int{i % 12}
		case 1:
			h[p] = []int{i % 12, (i + 4) % 12, (i + 7) % 12}
		default:
			h[p] = centres(12)
		}
	}
	f.announce(h)
	f.expect(h)

	// Kademlia's walk finds the same holders.
	for p, cs := range h {
		res, err := f.dirs[rand.IntN(12)].LookupWalk(context.Background(), p)
		if err != nil || len(res.Holders) != len(cs) {
			t.Errorf("walk: holders %v, err %v; want %d", res.Holders, err, len(cs))
		}
	}

	// A patient no one announced has no holders, and the lookup is
	// complete: the 3 closest members answered.
	res, err := f.dirs[0].Lookup(context.Background(), pseudonyms(1)[0])
	if err != nil || len(res.Holders) != 0 || res.Answered != 3 {
		t.Errorf("unknown patient: %+v, %v", res, err)
	}
}

func TestAnnouncingTwiceSendsNothingNew(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	ps := pseudonyms(50)
	f.announce(holdings{ps[0]: {0}})
	ctx := context.Background()
	d := f.dirs[0]
	for _, batch := range [][]ledger.Pseudonym{ps, ps} {
		if err := d.Announce(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	f.expect(heldAt(ps, 0))
	before, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Announced != len(ps) {
		t.Errorf("announced %d keys, want %d", before.Announced, len(ps))
	}
	// Once everything is out, announcing the same patients queues nothing.
	if err := d.Announce(ctx, ps...); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Backlog(ctx); err != nil || n != 0 {
		t.Errorf("announcing known patients again queued %d keys (%v)", n, err)
	}
	// Whatever was queued has gone out once the backlog is empty.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := d.Backlog(ctx); err == nil && n == 0 || time.Now().After(deadline) {
			break
		}
	}
	after, err := d.Status(ctx)
	if err != nil || after.Provided != before.Provided || after.Announced != len(ps) {
		t.Errorf("after announcing again: %d sent (was %d), %d announced (%v)", after.Provided, before.Provided, after.Announced, err)
	}
}

// TestNonMemberIsNeverReturned runs an eleventh centre that is not in the
// charter (the node's gater would keep it out; here it reaches the DHT) and
// announces a patient the members hold too.
func TestNonMemberIsNeverReturned(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	outsiderMembers := func() []peer.AddrInfo { // it believes itself a member
		return append(f.memberList(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	out, err := New(h, Options{Federation: "test-fed", Path: filepath.Join(t.TempDir(), "outsider.db"), Members: outsiderMembers})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx := context.Background()
	for _, m := range f.memberList() {
		f.dial(ctx, -1, h, m)
	}
	if err := out.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ps := pseudonyms(20)
	hold := heldAt(ps, 3)
	f.announce(hold)
	if err := out.Announce(ctx, ps...); err != nil {
		t.Fatal(err)
	}
	if err := out.AnnounceEach(ctx, ps[:5]...); err != nil {
		t.Fatal(err)
	}
	f.expect(hold)
	// The outsider's records reached the members and were refused: no
	// member stores one.
	for i, d := range f.dirs {
		n, err := d.Stored(h.ID())
		if err != nil || n != 0 {
			t.Errorf("centre %d stores %d announcements by the outsider (%v)", i, n, err)
		}
	}
	// It answers for itself, and even a lookup from it finds only members.
	for _, p := range ps {
		provs, err := out.providersAt(ctx, h.ID(), multihash(digest("test-fed", p)))
		if err != nil || !slices.Equal(provs, []peer.ID{h.ID()}) {
			t.Fatalf("the outsider answers %v (%v) for its own announcement", provs, err)
		}
	}
	for _, p := range ps {
		res, err := f.dirs[rand.IntN(12)].LookupWalk(ctx, p)
		if err != nil || slices.Contains(res.Holders, h.ID()) {
			t.Errorf("walk returned %v, %v", res.Holders, err)
		}
	}
}

func TestWithdrawRemovesCentre(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	ps := pseudonyms(20)
	h := heldAt(ps, 1, 4, 8)
	f.announce(h)
	f.expect(h)
	if err := f.dirs[4].Withdraw(context.Background(), ps[:10]...); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps[:10] {
		h[p] = []int{1, 8}
	}
	f.expect(h)
	st, err := f.dirs[4].Status(context.Background())
	if err != nil || st.Announced != 10 {
		t.Errorf("centre 4 announces %d keys (%v), want the 10 it kept", st.Announced, err)
	}
}

// A centre answers for its own announcements from its keystore: a
// lookup asking it finds it, with no record of its own written, and a
// withdrawal takes the answer back.
func TestOwnAnnouncementsAnswerFromTheKeystore(t *testing.T) {
	f := newTestFedWith(t, 4, 3) // every member stores every key
	ctx := context.Background()
	ps := pseudonyms(5)
	f.announce(heldAt(ps, 0))
	askOwner := func(p ledger.Pseudonym) []peer.ID {
		t.Helper()
		provs, err := f.dirs[1].providersAt(ctx, f.ids[0], multihash(digest("test-fed", p)))
		if err != nil {
			t.Fatal(err)
		}
		return provs
	}
	for _, p := range ps {
		key := multihash(digest("test-fed", p))
		if got := askOwner(p); !slices.Equal(got, []peer.ID{f.ids[0]}) {
			t.Errorf("the announcer answers %v for its own key, want itself", got)
		}
		if has, err := f.dirs[0].recs.Has(ctx, recordKey(key, f.ids[0])); err != nil || has {
			t.Errorf("the announcer wrote a record of its own (%v, %v)", has, err)
		}
	}
	if st, err := f.dirs[0].Status(ctx); err != nil || st.Announced != len(ps) || st.Stored != 0 {
		t.Errorf("the announcer's status %+v (%v): want %d announced, none stored for others", st, err, len(ps))
	}
	if err := f.dirs[0].Withdraw(ctx, ps[:2]...); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		got := askOwner(p)
		if withdrawn := i < 2; withdrawn != (len(got) == 0) {
			t.Errorf("pseudonym %d (withdrawn: %v): the announcer answers %v", i, withdrawn, got)
		}
	}
}

func TestWithdrawalFromNonMemberIsRefused(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	f.mu.Lock()
	f.members = f.members[:11] // centre 11 is removed from the charter
	f.mu.Unlock()
	err := f.dirs[11].sendWithdraw(context.Background(), f.ids[0], []mh.Multihash{multihash([32]byte{1})})
	if !errors.Is(err, ErrWithdrawRefused) {
		t.Fatalf("a withdrawal from a non-member was served: %v", err)
	}
	if _, err := f.dirs[0].serveWithdraw(context.Background(), f.ids[1], 7, make([]byte, 32)); err == nil {
		t.Fatal("an unknown operation was served")
	}
}

func TestEveryCentreRestarts(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	ps := pseudonyms(30)
	h := holdings{}
	for i, p := range ps {
		h[p] = []int{i % 12, (i + 5) % 12}
	}
	f.announce(h)
	f.expect(h)
	for i := range f.dirs {
		f.stop(i)
	}
	for i := range f.dirs {
		f.start(i)
	}
	f.connect()
	f.expect(h)
	held := make([]int, len(f.dirs))
	for _, cs := range h {
		for _, c := range cs {
			held[c]++
		}
	}
	for i, d := range f.dirs {
		st, err := d.Status(context.Background())
		if err != nil || st.Announced != held[i] {
			t.Errorf("centre %d announces %d keys after restarting (%v), want %d", i, st.Announced, err, held[i])
		}
	}
}

func TestLookupWithHolderDown(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	ps := pseudonyms(30)
	h := heldAt(ps, 2, 5, 7)
	f.announce(h)
	f.expect(h)
	f.stop(5)
	f.stop(6) // and a member that holds nothing but may be among the closest
	// The stopped holder's announcements stay with the members storing
	// them (the query phase finds it down); the others are all returned,
	// and a closest member that is down is replaced by the next.
	f.expect(h)
	failed := 0
	for _, p := range ps {
		res, err := f.dirs[0].Lookup(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		failed += len(res.Failed)
	}
	if failed == 0 {
		t.Error("no lookup asked a stopped member: the test proves nothing")
	}
}

func TestLookupIncompleteWhenAlone(t *testing.T) {
	f := newTestFedWith(t, 12, 5)
	p := pseudonyms(1)[0]
	f.announce(holdings{p: {0}})
	for i := 1; i < 12; i++ {
		f.stop(i)
	}
	res, err := f.dirs[0].Lookup(context.Background(), p)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("lookup with every other member down: %v, want ErrIncomplete", err)
	}
	// The 6 closest members (Replication and one, the most that store
	// anything of the key) were tried in turn, this centre's own store
	// answering if it is one of them: the partial result holds what it
	// knows.
	self := slices.Contains(replicasOf(f.dirs[0].ring(), multihash(digest("test-fed", p)), 6, ""), f.ids[0])
	switch {
	case res.Answered+len(res.Failed) != 6:
		t.Errorf("partial result %+v: %d members asked, want 6", res, res.Answered+len(res.Failed))
	case self && (!slices.Equal(res.Holders, []peer.ID{f.ids[0]}) || res.Answered != 1):
		t.Errorf("partial result %+v: this centre's own store did not answer", res)
	case !self && (len(res.Holders) != 0 || res.Answered != 0):
		t.Errorf("partial result %+v: want no answer", res)
	}
}

func TestKey(t *testing.T) {
	var p ledger.Pseudonym
	a, b := Key("fed-a", p), Key("fed-b", p)
	if a.Equals(b) {
		t.Fatal("two federations share a key")
	}
	if a.Prefix().Version != 1 || a.Type() != 0x55 || len(a.Hash()) != 34 {
		t.Fatalf("key %s is not CIDv1 raw sha2-256", a)
	}
	p[0] = 1
	if Key("fed-a", p).Equals(a) {
		t.Fatal("two pseudonyms share a key")
	}
}

func FuzzParseWithdraw(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 64))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, req []byte) {
		keys, err := parseWithdraw(req)
		if err != nil {
			return
		}
		if len(keys)*32 != len(req) {
			t.Fatalf("%d keys from %d bytes", len(keys), len(req))
		}
		for i, k := range keys {
			if string(k[2:]) != string(req[32*i:32*i+32]) {
				t.Fatalf("key %d does not carry its digest", i)
			}
		}
	})
}

// TestAnnouncementsAreStoredAtTheClosestMembers checks what the one-hop
// lookup relies on: an announcement is stored at the Replication members
// closest to its key (the announcer aside).
func TestAnnouncementsAreStoredAtTheClosestMembers(t *testing.T) {
	for _, n := range []int{10, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { testPlacement(t, n) })
	}
}

func testPlacement(t *testing.T, n int) {
	f := newTestFed(t, n)
	ps := pseudonyms(50)
	h := heldAt(ps, 0)
	f.announce(h)
	f.expect(h)
	index := map[peer.ID]int{}
	for i, id := range f.ids {
		index[id] = i
	}
	ctx := context.Background()
	r := f.dirs[0].replication
	if r != 5 {
		t.Fatalf("replication %d with %d members, not the default of 5", r, n)
	}
	stores := func(id peer.ID, key []byte) bool {
		has, err := f.dirs[index[id]].recs.Has(ctx, recordKey(key, f.ids[0]))
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	// Every one of the r closest stores it, and no other member: the
	// placement sends to those alone, and the repair reads it back there.
	deadline := time.Now().Add(time.Minute)
	for _, p := range ps {
		key := multihash(digest("test-fed", p))
		order := kb.SortClosestPeers(slices.Clone(f.ids[1:]), kb.ConvertKey(string(key)))
		var missing []int
		for {
			missing = missing[:0]
			for rank, id := range order[:r] {
				if !stores(id, key) {
					missing = append(missing, rank+1)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(missing) > 0 {
			t.Errorf("%x: after the repair, the members ranked %v of the %d closest do not store it", p[:4], missing, r)
		}
		for rank, id := range order[r:] {
			if stores(id, key) {
				t.Errorf("%x: the member ranked %d stores it, beyond the %d closest", p[:4], r+rank+1, r)
			}
		}
	}
}

// TestLookupAsksTheClosestOfManyMembers runs 20 centres for 5 replicas:
// each lookup reads the announcements of the 3 closest members, no more,
// and finds every holder.
func TestLookupAsksTheClosestOfManyMembers(t *testing.T) {
	f := newTestFedWith(t, 20, 5)
	ps := pseudonyms(60)
	h := holdings{}
	for i, p := range ps {
		h[p] = []int{i % 20, (i + 7) % 20}
	}
	f.announce(h)
	f.expect(h)
	res, err := f.dirs[3].Lookup(context.Background(), ps[0])
	if err != nil || res.Answered != 3 || len(res.Failed) != 0 {
		t.Fatalf("a lookup among 20: %d answered, failed %v, %v; want the 3 closest", res.Answered, res.Failed, err)
	}
}

// TestLookupEveryAsksEveryReplica: a holder's announcement lost at the 3
// closest members is missed by Lookup, which asks those 3, and found by
// LookupEvery, which asks every member that may store it. The holder is
// one of the members farthest from the key: a holder among the 3 closest
// answers for its own announcement, which no deletion takes away.
func TestLookupEveryAsksEveryReplica(t *testing.T) {
	f := newTestFedWith(t, 20, 5)
	ctx := context.Background()
	ps := pseudonyms(1)
	key := multihash(digest("test-fed", ps[0]))
	closest := kb.SortClosestPeers(slices.Clone(f.ids), kb.ConvertKey(string(key)))
	index := f.replicaSet(5).index
	holder := closest[len(closest)-2]
	asker := f.dirs[index[closest[len(closest)-1]]] // neither replica nor holder
	h := holdings{ps[0]: {index[holder]}}
	f.announce(h)
	f.expect(h)
	for _, id := range closest[:3] {
		if err := f.dirs[index[id]].recs.Delete(ctx, recordKey(key, holder)); err != nil && !errors.Is(err, ds.ErrNotFound) {
			t.Fatal(err)
		}
	}
	res, err := asker.Lookup(ctx, ps[0])
	if err != nil || res.Answered != 3 || len(res.Holders) != 0 {
		t.Fatalf("Lookup after the 3 closest lost the announcement: %d answered (failed %v), holders %v, %v; want 3 and no holder", res.Answered, res.Failed, res.Holders, err)
	}
	res, err = asker.LookupEvery(ctx, ps[0])
	if err != nil || res.Answered != 6 || !slices.Equal(res.Holders, []peer.ID{holder}) {
		t.Fatalf("LookupEvery: %d answered, holders %v, %v; want 6 answered and the holder", res.Answered, res.Holders, err)
	}
}

// TestReprovidePutsBackWhatExpired has a replica lose a record (as one
// that expired 48 h after it was sent) and waits for the reprovide, every
// second here, to send it again; the status tells when it last ran.
func TestReprovidePutsBackWhatExpired(t *testing.T) {
	f := newTestFedTweaked(t, 8, func(o *Options) { o.ReprovideInterval = time.Second })
	ps := pseudonyms(10)
	h := heldAt(ps, 0)
	f.announce(h)
	f.expect(h)
	rs := f.replicaSet(5)
	ctx := context.Background()
	key := multihash(digest("test-fed", ps[0]))
	victim := rs.index[rs.of(0, key)[0]]
	if err := f.dirs[victim].recs.Delete(ctx, recordKey(key, f.ids[0])); err != nil {
		t.Fatal(err)
	}
	if len(rs.missing(t, h)) != 1 {
		t.Fatalf("after the deletion: %v missing, want one", rs.missing(t, h))
	}
	rs.waitAtReplicas(t, h, 30*time.Second, "the reprovide")
	// A key counts as sent once it reached every replica: under load a
	// round may send some late (they go to the repair), so the check
	// waits for the rounds every second to have sent each key again.
	var st Status
	reprovided := func() bool {
		return !st.LastReprovide.IsZero() && st.NextReprovide.After(st.LastReprovide) && st.Provided >= int64(2*len(ps))
	}
	for deadline := time.Now().Add(30 * time.Second); !reprovided() && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if st, err = f.dirs[0].Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !reprovided() {
		t.Fatalf("after a reprovide: last %v, next %v, %d keys sent", st.LastReprovide, st.NextReprovide, st.Provided)
	}
}

// replicaSet is where a federation's announcements belong: each key's r
// closest members other than its holder.
type replicaSet struct {
	f     *testFed
	r     int
	index map[peer.ID]int
}

func (f *testFed) replicaSet(r int) replicaSet {
	index := map[peer.ID]int{}
	for i, id := range f.ids {
		index[id] = i
	}
	return replicaSet{f, r, index}
}

// of returns the replicas of holder's announcement of key.
func (rs replicaSet) of(holder int, key mh.Multihash) []peer.ID {
	others := slices.DeleteFunc(slices.Clone(rs.f.ids), func(id peer.ID) bool { return id == rs.f.ids[holder] })
	return kb.SortClosestPeers(others, kb.ConvertKey(string(key)))[:rs.r]
}

// missing returns the announcements of h not at one of their replicas.
func (rs replicaSet) missing(t *testing.T, h holdings) []string {
	t.Helper()
	var out []string
	for p, holders := range h {
		key := multihash(digest("test-fed", p))
		for _, c := range holders {
			for _, id := range rs.of(c, key) {
				has, err := rs.f.dirs[rs.index[id]].recs.Has(context.Background(), recordKey(key, rs.f.ids[c]))
				if err != nil {
					t.Fatal(err)
				}
				if !has {
					out = append(out, fmt.Sprintf("%x by centre %d at centre %d", p[:4], c, rs.index[id]))
				}
			}
		}
	}
	return out
}

// waitAtReplicas waits up to within for every announcement of h to be at
// every one of its replicas.
func (rs replicaSet) waitAtReplicas(t *testing.T, h holdings, within time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		last := rs.missing(t, h)
		if len(last) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v, announcements not at their replicas: %v", what, within, last)
		}
	}
}

// twelveForFive starts 12 centres for 5 replicas, so that most members
// are no replica of a key, and announces 40 patients, each held at two
// centres.
func twelveForFive(t *testing.T) (*testFed, holdings, []ledger.Pseudonym, replicaSet) {
	t.Helper()
	const n, r = 12, 5
	f := newTestFedWith(t, n, r)
	ps := pseudonyms(40)
	h := holdings{}
	for i, p := range ps {
		h[p] = []int{i % n, (i + 5) % n}
	}
	f.announce(h)
	return f, h, ps, f.replicaSet(r)
}

// TestEveryAnnouncementIsAtEveryReplica runs more centres than replicas
// (12 for 5), where the sweep provider alone may pass over a replica (it
// counts a region done once a fifth of its members took the records) or
// place records away from the closest members: after the repair, every
// announcement is stored at every one of the Replication members closest
// to its key, and a replica that lost one gets it back from Repair.
func TestEveryAnnouncementIsAtEveryReplica(t *testing.T) {
	f, h, ps, rs := twelveForFive(t)
	r := rs.r
	f.expect(h)
	ctx := context.Background()
	index, replicas := rs.index, rs.of
	missing := func() []string { return rs.missing(t, h) }
	// Every announcement is at its replicas, and every centre's repair
	// has checked all it queued, within a minute.
	backlog := func() []string {
		var out []string
		for i, d := range f.dirs {
			if b := d.RepairBacklog(); b != 0 {
				out = append(out, fmt.Sprintf("centre %d: %d", i, b))
			}
		}
		return out
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		last, queued := missing(), backlog()
		if len(last) == 0 && len(queued) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, announcements not at their replicas: %v; repairs queued: %v", last, queued)
		}
	}

	// A replica loses one; the holder's repair finds it out and sends it.
	p := ps[0]
	key := multihash(digest("test-fed", p))
	holder := h[p][0]
	lost := index[replicas(holder, key)[2]]
	if err := f.dirs[lost].recs.Delete(ctx, recordKey(key, f.ids[holder])); err != nil {
		t.Fatal(err)
	}
	rep, err := f.dirs[holder].Repair(ctx, p)
	if err != nil || rep.Keys != 1 || rep.Checked != r || rep.Resent != 1 || len(rep.Failed) != 0 {
		t.Fatalf("repair after a replica lost a record: %+v, %v; want %d checked, 1 resent", rep, err, r)
	}
	if got := missing(); len(got) != 0 {
		t.Fatalf("after the repair, missing: %v", got)
	}

	// A withdrawn announcement is not put back by a repair.
	if err := f.dirs[holder].Withdraw(ctx, p); err != nil {
		t.Fatal(err)
	}
	rep, err = f.dirs[holder].Repair(ctx, p)
	if err != nil || rep.Resent != 0 {
		t.Fatalf("repair after a withdrawal: %+v, %v; want nothing sent", rep, err)
	}
	for _, id := range replicas(holder, key) {
		if has, err := f.dirs[index[id]].recs.Has(ctx, recordKey(key, f.ids[holder])); err != nil || has {
			t.Fatalf("centre %d stores the withdrawn announcement (%v)", index[id], err)
		}
	}
}

// A replica that lost announcements (its store dropped them, as a crash
// before its flush or a restore from an older backup would) is refilled
// by their holders once it connects again; a holder that restarts checks
// what it announced before at its replicas and sends what they lack.
func TestSweepsRefillWhatReplicasLost(t *testing.T) {
	f, h, _, rs := twelveForFive(t)
	rs.waitAtReplicas(t, h, time.Minute, "announced")
	// Every centre's sweep at start has ended, so that what is dropped
	// below is refilled by the sweeps it tests.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if !slices.ContainsFunc(f.dirs, func(d *Directory) bool { return d.LastSweep().At.IsZero() }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after a minute, a centre has not ended its sweep at start")
		}
	}
	ctx := context.Background()
	// drop deletes the announcements of h at the running replicas where
	// at(replica, holder) says so, and returns how many.
	drop := func(at func(replica, holder int) bool) int {
		dropped := 0
		for p, holders := range h {
			key := multihash(digest("test-fed", p))
			for _, c := range holders {
				for _, id := range rs.of(c, key) {
					if i := rs.index[id]; f.dirs[i] != nil && at(i, c) {
						if err := f.dirs[i].recs.Delete(ctx, recordKey(key, f.ids[c])); err != nil {
							t.Fatal(err)
						}
						dropped++
					}
				}
			}
		}
		return dropped
	}

	// A replica loses every announcement it stored, then restarts.
	const replica = 3
	lost := drop(func(i, _ int) bool { return i == replica })
	if lost == 0 {
		t.Fatalf("centre %d is the replica of no announcement: the test shows nothing", replica)
	}
	f.stop(replica)
	f.start(replica)
	f.connect()
	rs.waitAtReplicas(t, h, time.Minute, fmt.Sprintf("centre %d restarted without %d announcements", replica, lost))

	// A holder is down while its replicas lose its announcements; it
	// restarts with them in its keystore, so Announce sends none again:
	// its sweep at start checks them all.
	const holder = 0
	f.stop(holder)
	lost = drop(func(_, c int) bool { return c == holder })
	if lost == 0 {
		t.Fatalf("centre %d holds nothing: the test shows nothing", holder)
	}
	f.start(holder)
	f.connect()
	rs.waitAtReplicas(t, h, time.Minute, fmt.Sprintf("centre %d restarted, its replicas without %d of its announcements", holder, lost))
	// The records are back as its sweep sends them; the sweep's report
	// comes once it has checked every key.
	for deadline := time.Now().Add(time.Minute); f.dirs[holder].LastSweep().At.IsZero(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, centre %d has not ended its sweep at start", holder)
		}
	}
	// Whether the sweep or the sweep provider's first round put them
	// back first, the sweep checked every key at every replica.
	held := 0
	for _, holders := range h {
		if slices.Contains(holders, holder) {
			held++
		}
	}
	if last := f.dirs[holder].LastSweep(); last.Err != nil || last.Keys != held || last.Checked != held*rs.r || len(last.Failed) != 0 {
		t.Fatalf("centre %d's sweep at start: %+v; want its %d keys checked at %d replicas each", holder, last, held, rs.r)
	}
}

// The DHT bootstraps from the 16 members closest to the centre by XOR
// distance, never itself, not from every member: it dials each of them at
// once whenever its routing table runs low.
func TestBootstrapFromTheClosestMembers(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	var ids []peer.ID
	for range 40 {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID())
	}
	members := func() []peer.AddrInfo {
		out := make([]peer.AddrInfo, len(ids))
		for i, id := range ids {
			out[i] = peer.AddrInfo{ID: id}
		}
		return out
	}
	self := ids[7]
	d := &Directory{host: mn.Host(self), members: members}
	var got []peer.ID
	for _, m := range d.bootstrap() {
		got = append(got, m.ID)
	}
	others := slices.DeleteFunc(slices.Clone(ids), func(id peer.ID) bool { return id == self })
	want := kb.SortClosestPeers(others, kb.ConvertPeerID(self))[:bootstrapPeers]
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("bootstraps from %v, want the %d closest %v", got, bootstrapPeers, want)
	}
	ids = ids[:10] // a small federation: every other member
	if got := d.bootstrap(); len(got) != 9 || slices.ContainsFunc(got, func(m peer.AddrInfo) bool { return m.ID == self }) {
		t.Fatalf("among 10 members it bootstraps from %v", got)
	}
}
