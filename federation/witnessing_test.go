package federation

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node/ledger"
)

func TestWitnessOverTheNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	net := mocknet.New()
	defer net.Close()
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	logKey, witnessKey, strangerKey := testMemberKey("a"), testMemberKey("w"), testMemberKey("s")
	hostFor := func(key []byte) host.Host {
		sk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := net.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	lh, wh, sh := hostFor(logKey), hostFor(witnessKey), hostFor(strangerKey)
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	charter := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(2), Members: []Member{
		{Name: "centre-a", ID: lh.ID(), Addrs: []ma.Multiaddr{addr}},
		{Name: "centre-w", ID: wh.ID(), Addrs: []ma.Multiaddr{addr}},
	}}
	wl, err := ledger.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: "medfed/test/centre-w", Key: witnessKey})
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	if _, err := NewWitness(wh, witnessKey, wl, func() Charter { return charter }, nil); err != nil {
		t.Fatal(err)
	}
	cv, err := NewCosignatureVerifier(charter.Members[1])
	if err != nil {
		t.Fatal(err)
	}
	ask := func(from host.Host, r AddRequest) ([]byte, error) {
		return RequestCosignature(ctx, from, wh.ID(), r)
	}

	honest := newTestLog(t, logKey) // origin medfed/test/centre-a
	cp5 := honest.grow(5, "a")
	cosigned, err := ask(lh, AddRequest{Note: cp5.Note})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open(cosigned, note.VerifierList(cv)); err != nil || len(n.Sigs) != 1 {
		t.Fatalf("the answer carries no valid cosignature: %v", err)
	}
	cp9 := honest.grow(4, "b")
	if _, err := ask(lh, honest.request(5, cp9)); err != nil {
		t.Fatal(err)
	}
	cp12 := honest.grow(3, "c")
	_, err = ask(lh, honest.request(5, cp12))
	var old *OldSizeError
	if !errors.As(err, &old) || old.Held != 9 {
		t.Fatalf("stale old size: %v, want the held size 9", err)
	}
	if _, err := ask(lh, honest.request(old.Held, cp12)); err != nil {
		t.Fatalf("retry from the held size: %v", err)
	}

	// The same centre rewrites its history and re-signs at size 12.
	rewriter := newTestLog(t, logKey)
	rw12 := rewriter.grow(12, "rewritten")
	if _, err := ask(lh, AddRequest{OldSize: 12, Note: rw12.Note}); !errors.Is(err, ErrLogBlocked) {
		t.Fatalf("rewritten history: %v, want the log blocked", err)
	}
	ev, err := wl.Evidence(ctx)
	if err != nil || len(ev) != 1 || ev[0].Origin != witnessTestOrigin {
		t.Fatalf("evidence %+v, %v", ev, err)
	}
	cp15 := honest.grow(3, "d")
	if _, err := ask(lh, honest.request(12, cp15)); !errors.Is(err, ErrLogBlocked) || !strings.Contains(err.Error(), "the witness says: ") {
		t.Fatalf("after equivocation the witness still cosigns, or does not say why not: %v", err)
	}

	// A peer that is not a member gets nothing cosigned.
	if _, err := ask(sh, AddRequest{Note: cp5.Note}); !errors.Is(err, ErrUnknownLog) || !strings.Contains(err.Error(), "the witness says: ") {
		t.Fatalf("a non-member's checkpoint: %v, want the witness to refuse it and say why", err)
	}
}
