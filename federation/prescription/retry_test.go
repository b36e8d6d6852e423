package prescription_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// A pharmacy whose confirmation is lost on the way (the issuer appended
// the dispense, then the stream broke) asks again with the same claim
// and gets that supply's confirmation: the supply is neither lost to the
// pharmacy nor dispensed twice.
func TestALostConfirmationIsAskedForAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	index, secret := f.issue(1, "patient")
	// The issuer's answers, the first of them lost once the issuer has
	// dispensed: its stream reset instead of answered.
	var asked atomic.Int32
	ph, pharmacyKey, issuer := lossyIssuer(t, f, func(n int32) fate {
		asked.Store(n)
		if n == 1 {
			return lostAfter
		}
		return answered
	})
	client, err := prescription.NewClient(ph, prescription.ClientOptions{Key: pharmacyKey,
		Charter: func() federation.Charter { return federation.Charter{Federation: fed} }, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Claim(ctx, issuer, index, secret, ledger.StaffID{7})
	if err != nil {
		t.Fatalf("a claim whose first answer was lost: %v", err)
	}
	ds := f.dispenses(index)
	if got.Fill != 1 || len(ds) != 1 || got.Dispense != ds[0].Index || asked.Load() != 2 {
		t.Fatalf("confirmed supply %d (entry %d) after %d tries; the ledger holds %+v: want the one supply, asked twice", got.Fill, got.Dispense, asked.Load(), ds)
	}
	if ds[0].Pharmacy == nil || peer.ID(ds[0].Pharmacy) != ph.ID() {
		t.Fatalf("the dispense names pharmacy %x", ds[0].Pharmacy)
	}
	// The next claim, a new one, gets the repeat.
	if got, err = client.Claim(ctx, issuer, index, secret, ledger.StaffID{7}); err != nil || got.Fill != 2 || len(f.dispenses(index)) != 2 {
		t.Fatalf("the repeat: supply %d, %v", got.Fill, err)
	}
}

// fate is what becomes of one claim sent to a lossyIssuer.
type fate int

const (
	answered   fate = iota
	lostBefore      // the stream reset before the issuer sees the claim
	lostAfter       // the stream reset once the issuer answered it
	limited         // refused at the door, as over the member rate
)

// lossyIssuer serves f's issuer on a mocknet host beside a pharmacy's,
// each claim meeting the fate of, by the count of claims asked so far (1
// the first).
func lossyIssuer(t *testing.T, f *issuerFixture, of func(asked int32) fate) (pharmacy host.Host, pharmacyKey []byte, issuer peer.ID) {
	t.Helper()
	net := mocknet.New()
	t.Cleanup(func() { net.Close() })
	hostFor := func(key []byte) host.Host {
		sk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := net.AddPeer(sk, ma.StringCast("/ip4/127.0.0.1/tcp/4001"))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	key, _ := testKey(t, "pharmacy-b")
	ih, ph := hostFor(f.key), hostFor(key)
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	ih.SetStreamHandler(prescription.ProtocolID, func(s network.Stream) {
		defer s.Close()
		_, req, err := wire.Read(s, 1<<20)
		if err != nil {
			s.Reset()
			return
		}
		var answer []byte
		switch of(asked.Add(1)) {
		case lostBefore:
			s.Reset()
			return
		case limited:
			err = federation.ErrRateLimited
		case lostAfter:
			f.issuer.Claim(context.Background(), s.Conn().RemotePeer(), req)
			s.Reset()
			return
		default:
			answer, err = f.issuer.Claim(context.Background(), s.Conn().RemotePeer(), req)
		}
		status := wire.StatusOK
		if err != nil {
			status, answer = prescription.Refusal(err)
		}
		if err := wire.Write(s, status, answer); err != nil {
			t.Error(err)
		}
	})
	return ph, key, ih.ID()
}

// pharmacyClient is a pharmacy's client on ph, its pending claims in dir.
func pharmacyClient(t *testing.T, f *issuerFixture, ph host.Host, key []byte, dir string) *prescription.Client {
	t.Helper()
	pending, err := prescription.OpenPendingClaims(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := prescription.NewClient(ph, prescription.ClientOptions{Key: key, Pending: pending, Timeout: 5 * time.Second,
		Charter: func() federation.Charter { return federation.Charter{Federation: fed} }, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A pharmacy that gave up on a claim (every try's answer lost, the issuer
// having dispensed at the first) and asks again later, after a restart
// and once the claim is long out of time, gets that supply, renewed: it
// is handed over then, and no second supply is dispensed for it. A rate
// limit meanwhile, or a claim with another token, leave it pending.
func TestAClaimGivenUpIsRenewed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	index, secret := f.issue(1, "patient")
	var now atomic.Int32 // the fate of every claim from now on
	now.Store(int32(lostAfter))
	ph, key, issuer := lossyIssuer(t, f, func(int32) fate { return fate(now.Load()) })
	dir := filepath.Join(t.TempDir(), "pending")
	client := func() *prescription.Client { return pharmacyClient(t, f, ph, key, dir) } // a pharmacy (re)started
	if _, err := client().Claim(ctx, issuer, index, secret, ledger.StaffID{7}); !errors.Is(err, node.ErrUnavailable) {
		t.Fatalf("a claim whose every answer was lost: %v", err)
	}
	ds := f.dispenses(index)
	if len(ds) != 1 {
		t.Fatalf("the issuer holds %d dispenses after the lost claim, want 1", len(ds))
	}
	// Still lost, then over the rate: the claim is kept, nothing more
	// dispensed.
	for _, meanwhile := range []fate{lostBefore, limited} {
		now.Store(int32(meanwhile))
		if _, err := client().Claim(ctx, issuer, index, secret, ledger.StaffID{8}); !errors.Is(err, node.ErrUnavailable) || len(f.dispenses(index)) != 1 {
			t.Fatalf("asked again while the issuer is %d: %v, %d dispenses", meanwhile, err, len(f.dispenses(index)))
		}
	}
	now.Store(int32(answered))
	// Another token (someone else's, or a mistyped one) does not find the
	// claim pending: it is a claim of its own, refused for good.
	if _, err := client().Claim(ctx, issuer, index, prescription.NewSecret(), ledger.StaffID{8}); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("another token: %v", err)
	}
	f.setClock(f.clock().Add(2 * prescription.MaxSkew)) // the claim long out of time
	got, err := client().Claim(ctx, issuer, index, secret, ledger.StaffID{8})
	if err != nil || !got.Renewed || got.Fill != 1 || got.Dispense != ds[0].Index || got.Pharmacist != (ledger.StaffID{7}) {
		t.Fatalf("the renewed claim: %+v, %v; want supply 1 of entry %d, renewed, for the first claim's pharmacist", got, err, ds[0].Index)
	}
	if ds := f.dispenses(index); len(ds) != 1 || ds[0].Pharmacist != (ledger.StaffID{7}) {
		t.Fatalf("the issuer holds %+v after the renewal, want the one dispense, for the first claim's pharmacist", ds)
	}
	// Answered: the next claim is a new one, and gets the repeat.
	got, err = client().Claim(ctx, issuer, index, secret, ledger.StaffID{8})
	if err != nil || got.Renewed || got.Fill != 2 || len(f.dispenses(index)) != 2 {
		t.Fatalf("the repeat: %+v, %v", got, err)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Fatalf("pending claims left: %v, %v", left, err)
	}
}

// A claim given up that never reached the issuer is sent again with the
// next: still in time, it is dispensed then, renewed; out of time, it is
// refused so that it is settled, and the next claim is made anew. Either
// way one supply is dispensed.
func TestAClaimThatNeverArrived(t *testing.T) {
	for _, late := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newIssuerFixture(t)
		defer func() { f.close() }()
		index, secret := f.issue(0, "patient")
		ph, key, issuer := lossyIssuer(t, f, func(asked int32) fate {
			if asked <= 4 {
				return lostBefore
			}
			return answered
		})
		c := pharmacyClient(t, f, ph, key, t.TempDir())
		if _, err := c.Claim(ctx, issuer, index, secret, ledger.StaffID{7}); !errors.Is(err, node.ErrUnavailable) || len(f.dispenses(index)) != 0 {
			t.Fatalf("a claim that never arrived: %v, %d dispenses", err, len(f.dispenses(index)))
		}
		if late {
			f.setClock(f.clock().Add(2 * prescription.MaxSkew))
		}
		got, err := c.Claim(ctx, issuer, index, secret, ledger.StaffID{8})
		// In time, the pending claim (pharmacist 7) is dispensed; late,
		// the new one (8).
		want := map[bool]ledger.StaffID{false: {7}, true: {8}}[late]
		if ds := f.dispenses(index); err != nil || got.Renewed == late || got.Fill != 1 || got.Pharmacist != want || len(ds) != 1 || ds[0].Pharmacist != want {
			t.Fatalf("late %v: the next claim: %+v, %v; the issuer holds %+v", late, got, err, ds)
		}
		// The only supply is gone: the next claim is refused, for good.
		if _, err := c.Claim(ctx, issuer, index, secret, ledger.StaffID{8}); !errors.Is(err, node.ErrConflict) {
			t.Fatalf("late %v: a claim beyond the supplies: %v", late, err)
		}
	}
}

// A pending claim's file that does not hold a claim of this pharmacy and
// prescription stops the next claim of it with an error that names the
// file, and nothing is sent.
func TestAPendingClaimUnreadable(t *testing.T) {
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	index, secret := f.issue(0, "patient")
	var asked atomic.Int32
	ph, key, issuer := lossyIssuer(t, f, func(n int32) fate { asked.Store(n); return lostBefore })
	dir := t.TempDir()
	c := pharmacyClient(t, f, ph, key, dir)
	if _, err := c.Claim(context.Background(), issuer, index, secret, ledger.StaffID{7}); !errors.Is(err, node.ErrUnavailable) {
		t.Fatalf("a claim that never arrived: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("pending claims: %v, %v", files, err)
	}
	for _, spoilt := range [][]byte{[]byte("not a claim"), nil} {
		if err := os.WriteFile(files[0], spoilt, 0o600); err != nil {
			t.Fatal(err)
		}
		before := asked.Load()
		_, err = c.Claim(context.Background(), issuer, index, secret, ledger.StaffID{7})
		if err == nil || !strings.Contains(err.Error(), files[0]) || asked.Load() != before || len(f.dispenses(index)) != 0 {
			t.Fatalf("a spoilt pending claim (%q): %v, asked %d more times, %d dispenses", spoilt, err, asked.Load()-before, len(f.dispenses(index)))
		}
	}
}
