package centre_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Three running centres, a patient with records at centre-b and
// centre-c: consent submitted through centre-a's admin socket reaches the
// holders the directory names, and bad input changes nothing.
func TestConsentThroughTheAdminSocket(t *testing.T) {
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	found(t, cfgs...)
	nodes := make([]*centre.Node, len(cfgs))
	for i, cfg := range cfgs {
		nodes[i] = start(t, cfg)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	eventually(t, 15*time.Second, "the centres' directories see each other", func() bool {
		return a.Directory.RoutingTableSize() == 2 && b.Directory.RoutingTableSize() == 2 && c.Directory.RoutingTableSize() == 2
	})
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("consent test patient")))
	for _, n := range []*centre.Node{b, c} {
		meta := ledger.Record{Occurred: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), DataClass: "lab-result", Location: "lab"}
		if _, err := n.Centre.AddRecord(ctx, p, meta, []byte("synthetic result")); err != nil {
			t.Fatal(err)
		}
		if _, err := n.AnnounceHeld(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "the directory lists both holders", func() bool {
		res, err := a.Lookup(ctx, p)
		return err == nil && len(res.Holders) == 2
	})
	sock := admin.Dial(cfgs[0].Data.Dir)
	seed := sha256.Sum256([]byte("consent test patient key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := consent.FormatPublicKey(key.Public().(ed25519.PublicKey))

	size := a.Centre.Ledger.Size()
	for _, bad := range []admin.AttestRequest{
		{Pseudonym: "not-hex", Key: pub},
		{Pseudonym: p.String(), Key: "abc"},
	} {
		if _, err := sock.Attest(ctx, bad); err == nil {
			t.Fatalf("attest %+v accepted", bad)
		}
	}
	if _, err := sock.SubmitConsent(ctx, []byte("not a signed document")); err == nil || !strings.Contains(err.Error(), "malformed consent document") {
		t.Fatalf("garbage submitted: %v", err)
	}
	if a.Centre.Ledger.Size() != size {
		t.Fatal("bad input reached the ledger")
	}

	del, err := sock.Attest(ctx, admin.AttestRequest{Pseudonym: p.String(), Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"centre-b", "centre-c"}; !slices.Equal(del.Delivered, want) || !slices.Equal(del.Holders, want) {
		t.Fatalf("attestation: %+v, want delivered to %v", del, want)
	}
	c1 := consent.Contract{ID: consent.ID{1}, Version: 1, Federation: "test-federation", Subject: p, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptOut,
		Provisions: []consent.Provision{{Type: consent.Permit, Purposes: consent.Treatment}}}
	grant, err := consent.SignContract(key, c1)
	if err != nil {
		t.Fatal(err)
	}
	if del, err = sock.SubmitConsent(ctx, grant); err != nil || len(del.Delivered) != 2 {
		t.Fatalf("grant: %+v, %v", del, err)
	}
	decide := admin.DecideRequest{Pseudonym: p.String(), Centre: "centre-a", Role: "clinician", Action: "access", Purpose: "treatment", Class: "lab-result", Recorded: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}
	for _, dir := range []string{cfgs[1].Data.Dir, cfgs[2].Data.Dir} {
		if d, err := admin.Dial(dir).Decide(ctx, decide); err != nil || !d.Permit || d.Basis != "contract" {
			t.Fatalf("before the revocation: %+v, %v", d, err)
		}
	}
	research := decide
	research.Purpose = "research"
	if d, err := admin.Dial(cfgs[1].Data.Dir).Decide(ctx, research); err != nil || d.Permit || !strings.Contains(d.Reason, "opt-out") {
		t.Fatalf("research: %+v, %v", d, err)
	}
	badRole := decide
	badRole.Role = "surgeon"
	if _, err := admin.Dial(cfgs[1].Data.Dir).Decide(ctx, badRole); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("a bad role: %v", err)
	}

	revoke, err := consent.SignRevocation(key, consent.Revocation{Federation: "test-federation", Subject: p, Target: c1.ID, Issued: c1.Issued})
	if err != nil {
		t.Fatal(err)
	}
	if del, err = sock.SubmitConsent(ctx, revoke); err != nil || len(del.Delivered) != 2 {
		t.Fatalf("revoke: %+v, %v", del, err)
	}
	for _, dir := range []string{cfgs[1].Data.Dir, cfgs[2].Data.Dir} {
		if d, err := admin.Dial(dir).Decide(ctx, decide); err != nil || d.Permit || d.Basis != "withdrawn" {
			t.Fatalf("after the revocation: %+v, %v", d, err)
		}
	}
	v, err := admin.Dial(cfgs[2].Data.Dir).Consent(ctx, p.String())
	if err != nil || v.Standing != "withdrawn" || v.Key != pub || len(v.Documents) != 3 || v.Contract.Terms.Base != "opt-out" {
		t.Fatalf("centre-c shows %+v, %v", v, err)
	}
}
