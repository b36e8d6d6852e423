package prescription_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/prescription"
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

	net := mocknet.New()
	defer net.Close()
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
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
	pharmacyKey, pharmacy := testKey(t, "pharmacy-b")
	ih, ph := hostFor(f.key), hostFor(pharmacyKey)
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	// The issuer's answers, the first of them lost once the issuer has
	// dispensed: its stream reset instead of answered.
	var asked atomic.Int32
	ih.SetStreamHandler(prescription.ProtocolID, func(s network.Stream) {
		defer s.Close()
		_, req, err := wire.Read(s, 1<<20)
		if err != nil {
			t.Error(err)
			s.Reset()
			return
		}
		answer, err := f.issuer.Claim(ctx, s.Conn().RemotePeer(), req)
		if asked.Add(1) == 1 {
			s.Reset()
			return
		}
		status := wire.StatusOK
		if err != nil {
			status, answer = wire.StatusRefused, []byte(err.Error())
		}
		if err := wire.Write(s, status, answer); err != nil {
			t.Error(err)
		}
	})
	client, err := prescription.NewClient(ph, prescription.ClientOptions{Key: pharmacyKey,
		Charter: func() federation.Charter { return federation.Charter{Federation: fed} }, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Claim(ctx, ih.ID(), index, secret, ledger.StaffID{7})
	if err != nil {
		t.Fatalf("a claim whose first answer was lost: %v", err)
	}
	ds := f.dispenses(index)
	if got.Fill != 1 || len(ds) != 1 || got.Dispense != ds[0].Index || asked.Load() != 2 {
		t.Fatalf("confirmed supply %d (entry %d) after %d tries; the ledger holds %+v: want the one supply, asked twice", got.Fill, got.Dispense, asked.Load(), ds)
	}
	if ds[0].Pharmacy == nil || string(ds[0].Pharmacy) != string(pharmacy) {
		t.Fatalf("the dispense names pharmacy %x", ds[0].Pharmacy)
	}
	// The next claim, a new one, gets the repeat.
	if got, err = client.Claim(ctx, ih.ID(), index, secret, ledger.StaffID{7}); err != nil || got.Fill != 2 || len(f.dispenses(index)) != 2 {
		t.Fatalf("the repeat: supply %d, %v", got.Fill, err)
	}
}
