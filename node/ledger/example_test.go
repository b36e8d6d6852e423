package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// The examples use a fixed key and clock so that their output is stable.
// A centre loads its key from its identity file, and the clock defaults to
// time.Now.
var (
	exampleKey    = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	exampleOrigin = ledger.Origin("example-federation", "centre-a")
	exampleClock  = func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }
)

// exampleRecord is the entry recording that a lab result about patient was
// stored off the ledger under payload ID n.
func exampleRecord(patient string, n byte) ledger.Entry {
	// Package pseudonym derives a patient's pseudonym; any 32 bytes will do here.
	p := ledger.Pseudonym(sha256.Sum256([]byte(patient)))
	r := ledger.Record{
		Occurred:   time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		DataClass:  "lab-result",
		Location:   "haematology",
		Payload:    [16]byte{15: n},
		Commitment: sha256.Sum256([]byte{n}),
	}
	e, err := ledger.NewRecord(p, r)
	if err != nil {
		log.Fatal(err)
	}
	return e
}

// openExampleLedger opens a new ledger in a temporary directory, as
// ExampleOpen shows; remove deletes the directory.
func openExampleLedger(ctx context.Context) (l *ledger.Ledger, path string, remove func()) {
	dir, err := os.MkdirTemp("", "ledger-example")
	if err != nil {
		log.Fatal(err)
	}
	path = filepath.Join(dir, "ledger.db")
	l, err = ledger.Open(ctx, path, ledger.Options{Origin: exampleOrigin, Key: exampleKey, Now: exampleClock})
	if err != nil {
		log.Fatal(err)
	}
	return l, path, func() { os.RemoveAll(dir) }
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "ledger-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger.db"), ledger.Options{
		Origin: exampleOrigin,
		Key:    exampleKey,
		Now:    exampleClock,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	index, err := l.Append(ctx, exampleRecord("patient 1", 1))
	if err != nil {
		log.Fatal(err)
	}
	e, err := l.Entry(ctx, index)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index:", index)
	fmt.Println("kind:", e.Kind)
	fmt.Println("stamped by the ledger's clock:", e.Time.Equal(exampleClock()))
	// Output:
	// index: 0
	// kind: record
	// stamped by the ledger's clock: true
}

func ExampleLedger_Sign() {
	ctx := context.Background()
	l, _, remove := openExampleLedger(ctx)
	defer remove()
	defer l.Close()
	if _, err := l.Append(ctx, exampleRecord("patient 1", 1), exampleRecord("patient 2", 2)); err != nil {
		log.Fatal(err)
	}

	sc, err := l.Sign(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// Another centre receives sc.Note and needs only the public key.
	pub := l.PublicKey()
	opened, err := ledger.OpenCheckpoint(sc.Note, exampleOrigin, pub)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("origin:", opened.Origin)
	fmt.Println("size:", opened.Size)
	fmt.Println("root matches the ledger's head:", opened.Root == l.Head().Root)
	// Output:
	// origin: medfed/example-federation/centre-a
	// size: 2
	// root matches the ledger's head: true
}

func ExampleVerifyInclusion() {
	ctx := context.Background()
	l, _, remove := openExampleLedger(ctx)
	defer remove()
	defer l.Close()
	for i := range 5 {
		if _, err := l.Append(ctx, exampleRecord(fmt.Sprint("patient ", i%2), byte(i+1))); err != nil {
			log.Fatal(err)
		}
	}
	sc, err := l.Sign(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// The centre answers a query for entry 3 with the entry and its proof.
	e, err := l.Entry(ctx, 3)
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := e.Encode()
	if err != nil {
		log.Fatal(err)
	}
	proof, err := l.ProveInclusion(ctx, 3, sc.Size)
	if err != nil {
		log.Fatal(err)
	}

	// The querier trusts only the centre's public key.
	cp, err := ledger.OpenCheckpoint(sc.Note, exampleOrigin, l.PublicKey())
	if err != nil {
		log.Fatal(err)
	}
	err = ledger.VerifyInclusion(cp.Checkpoint, 3, leaf, proof)
	fmt.Println("entry 3 is in the signed tree:", err == nil)

	// An entry altered in transit does not verify.
	leaf[len(leaf)-1] ^= 1
	err = ledger.VerifyInclusion(cp.Checkpoint, 3, leaf, proof)
	fmt.Println("altered entry rejected:", errors.Is(err, ledger.ErrBadProof))
	// Output:
	// entry 3 is in the signed tree: true
	// altered entry rejected: true
}

func ExampleVerify() {
	ctx := context.Background()
	l, path, remove := openExampleLedger(ctx)
	defer remove()
	for i := range 3 {
		if _, err := l.Append(ctx, exampleRecord("patient 1", byte(i+1))); err != nil {
			log.Fatal(err)
		}
		if _, err := l.Sign(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// Offline, with the centre's public key as the only trust anchor.
	rep, err := ledger.Verify(ctx, path, exampleKey.Public().(ed25519.PublicKey))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("origin:", rep.Origin)
	fmt.Println("size:", rep.Size)
	fmt.Println("checkpoints:", rep.Checkpoints)
	// Output:
	// origin: medfed/example-federation/centre-a
	// size: 3
	// checkpoints: 3
}
