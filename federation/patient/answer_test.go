package patient_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/ledger"
)

// An answer signed before holders could say they hold nothing (version 2,
// testdata/answer-v2.bin, a view's first page from a holder of two
// entries) still parses: a relay upgraded first reads the holders not yet
// upgraded.
func TestAnOldAnswerStillParses(t *testing.T) {
	raw, err := os.ReadFile("testdata/answer-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	a, err := patient.ParseAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	if a.Op != patient.View || a.Nothing || len(a.Entries) != 2 || a.Size != 41 || a.Next != 13 {
		t.Fatalf("parsed %+v", a)
	}
	raw[len(raw)-1] ^= 1
	if _, err := patient.ParseAnswer(raw); err == nil {
		t.Fatal("an old answer with a broken signature parsed")
	}
}

// An answer is written in the oldest version that carries it: one with
// entries as version 2, which relays not yet upgraded read; one that holds
// nothing as version 3. Either parses back as it was signed; an answer
// that holds nothing cannot carry anything else.
func TestAnswerVersions(t *testing.T) {
	seed := sha256.Sum256([]byte("centre-b"))
	key := ed25519.NewKeyFromSeed(seed[:])
	holder, err := federation.PeerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := ledger.Pseudonym{7}
	rec, err := ledger.NewRecord(p, ledger.Record{DataClass: "lab-result", Occurred: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Payload: [16]byte{4}, Commitment: [32]byte{5}})
	if err != nil {
		t.Fatal(err)
	}
	rec.Index, rec.Time = 3, time.Date(2026, 3, 1, 9, 1, 0, 0, time.UTC)
	entry, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	base := patient.Answer{Op: patient.View, Holder: holder, Subject: p, Nonce: [16]byte{1}, Size: 9}
	for _, tc := range []struct {
		name    string
		change  func(*patient.Answer)
		version byte // 0: Sign refuses it
	}{
		{"a view with entries", func(a *patient.Answer) { a.Entries = [][]byte{entry} }, 2},
		{"an erasure withdrawn", func(a *patient.Answer) { a.Op, a.Withdrawn = patient.Erase, true }, 2},
		{"a view from a centre holding nothing", func(a *patient.Answer) { a.Nothing = true }, 3},
		{"an erasure at a centre holding nothing", func(a *patient.Answer) { a.Op, a.Nothing = patient.Erase, true }, 3},
		{"holding nothing, with entries", func(a *patient.Answer) { a.Nothing, a.Entries = true, [][]byte{entry} }, 0},
		{"holding nothing, with a next page", func(a *patient.Answer) { a.Nothing, a.Next = true, 4 }, 0},
		{"holding nothing, withdrawn", func(a *patient.Answer) { a.Op, a.Nothing, a.Withdrawn = patient.Erase, true, true }, 0},
		{"holding nothing, with a problem", func(a *patient.Answer) { a.Op, a.Nothing, a.Problem = patient.Erase, true, "the directory" }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			tc.change(&a)
			raw, err := a.Sign(key)
			if tc.version == 0 {
				if err == nil {
					t.Fatal("signed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if raw[0] != tc.version {
				t.Fatalf("written as version %d, want %d", raw[0], tc.version)
			}
			got, err := patient.ParseAnswer(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Nothing != a.Nothing || got.Op != a.Op || got.Withdrawn != a.Withdrawn || len(got.Entries) != len(a.Entries) || got.Size != a.Size {
				t.Fatalf("parsed %+v, signed %+v", got, a)
			}
		})
	}
}
