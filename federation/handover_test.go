package federation

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/node/ledger"
)

// A log is cosigned by its witness set alone; when a charter version
// changes the set, the publisher hands the latest final checkpoint over:
// the new set cosigns it, and it is final under the new version without
// the log growing.
// witnessedFederation starts a witness for each of names on a mocknet,
// each with its ledger, under the charter *current points to (version 1,
// with the given witness sets and quorum).
func witnessedFederation(t *testing.T, ctx context.Context, names []string, witnesses int64, quorum int) (mocknet.Mocknet, []Member, map[string]*ledger.Ledger, *Charter) {
	t.Helper()
	net := mocknet.New()
	t.Cleanup(func() { net.Close() })
	var members []Member
	ledgers := map[string]*ledger.Ledger{}
	dir := t.TempDir()
	current := new(Charter)
	charter := func() Charter { return *current }
	for i, name := range names {
		key := testMemberKey(name)
		sk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4101+i))
		h, err := net.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, Member{Name: name, ID: h.ID(), Addrs: []ma.Multiaddr{addr}})
		l, err := ledger.Open(ctx, filepath.Join(dir, name+".db"), ledger.Options{Origin: ledger.Origin("test", name), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		ledgers[name] = l
		if _, err := NewWitness(h, key, l, charter, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	*current = Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(len(names)), Members: members}
	current.Policy.Witnesses, current.Policy.WitnessQuorum = witnesses, quorum
	if err := current.Validate(); err != nil {
		t.Fatal(err)
	}
	return net, members, ledgers, current
}

func TestWitnessSetHandover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e", "centre-f"}
	net, members, ledgers, cur := witnessedFederation(t, ctx, names, 2, 3)
	charter := func() Charter { return *cur }
	a := ledgers["centre-a"]
	pub := NewPublisher(net.Host(members[0].ID), a, charter, nil)
	if _, err := a.Append(ctx, ledger.Entry{Kind: ledger.KindCharter, Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	final, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v1 := *cur
	old := v1.Witnesses("centre-a")
	if _, err := OpenFinal(v1, members[0], final.Note); err != nil {
		t.Fatalf("not final under version 1: %v", err)
	}
	// Only the set witnessed it.
	for _, m := range members[1:] {
		held, err := ledgers[m.Name].WitnessedLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, has := held[final.Origin]
		if in := v1.InWitnessSet("centre-a", m.ID); has != in {
			t.Errorf("%s holds centre-a's checkpoint: %v; in its witness set: %v", m.Name, has, in)
		}
	}
	// A witness outside the set refuses.
	for _, m := range members[1:] {
		if v1.InWitnessSet("centre-a", m.ID) {
			continue
		}
		_, err := RequestCosignature(ctx, net.Host(members[0].ID), m.ID, AddRequest{Note: final.Note})
		if !errors.Is(err, ErrUnknownLog) {
			t.Fatalf("%s, outside the set, answered %v", m.Name, err)
		}
		break
	}

	// Version 2 removes one of the set: the set changes.
	v2, err := v1.WithoutMember(old[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	*cur = v2
	if _, err := OpenFinal(v2, members[0], final.Note); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("the old set's checkpoint is final under the new set's charter: %v", err)
	}
	handed, err := pub.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if handed.Size != final.Size || handed.Root != final.Root {
		t.Fatalf("handover finalised size %d, want the same checkpoint of size %d", handed.Size, final.Size)
	}
	if _, err := OpenFinal(v2, members[0], handed.Note); err != nil {
		t.Fatalf("not final under version 2 after the handover: %v", err)
	}
	if got, ok := a.LatestFinal(); !ok || string(got.Note) != string(handed.Note) {
		t.Fatal("the ledger does not keep the handed-over checkpoint as its latest final")
	}
}

// A checkpoint is final once the quorum of its witness set cosigned it: a
// witness that takes the request and never answers holds nothing back.
func TestFinalAtTheQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e"}
	net, members, ledgers, cur := witnessedFederation(t, ctx, names, 3, 3)
	set := cur.Witnesses("centre-a")
	hung := make(chan struct{})
	defer close(hung)
	net.Host(set[0].ID).SetStreamHandler(WitnessProtocolID, func(s network.Stream) {
		<-hung
		s.Reset()
	})
	a := ledgers["centre-a"]
	if _, err := a.Append(ctx, ledger.Entry{Kind: ledger.KindCharter, Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	// Well within the 10 s a request to a witness may take.
	quick, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	final, err := NewPublisher(net.Host(members[0].ID), a, func() Charter { return *cur }, nil).Publish(quick)
	if err != nil {
		t.Fatalf("with one witness of three silent: %v", err)
	}
	if _, err := OpenFinal(*cur, members[0], final.Note); err != nil {
		t.Fatalf("not final: %v", err)
	}
}

// Run checkpoints the ledger as it grows, not at its interval: with an
// interval of an hour, each append is final soon after, and a burst of
// appends while a checkpoint is out is covered by the next one.
func TestPublisherCheckpointsAsTheLedgerGrows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{"centre-a", "centre-b", "centre-c", "centre-d"}
	net, members, ledgers, cur := witnessedFederation(t, ctx, names, 3, 3)
	a := ledgers["centre-a"]
	pub := NewPublisher(net.Host(members[0].ID), a, func() Charter { return *cur }, nil)
	running, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pub.Run(running, time.Hour, 20*time.Millisecond) }()
	defer func() { stop(); <-done }()
	final := func(size int64) {
		t.Helper()
		for ctx.Err() == nil {
			if f, ok := a.LatestFinal(); ok && f.Size >= size {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("size %d not final before the deadline, with an hour's interval", size)
	}
	for round := range 3 {
		for i := range 20 {
			if _, err := a.Append(ctx, ledger.Entry{Kind: ledger.KindCharter, Body: fmt.Appendf(nil, "round %d entry %d", round, i)}); err != nil {
				t.Fatal(err)
			}
		}
		final(a.Size())
	}
}
