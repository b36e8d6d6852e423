// Package demo tells medfed's story for `medfed demo`: a federation of
// real centres in one process, in a scratch directory, each step narrated
// and checked. Each capability adds a chapter, a method on demo in the
// file named for it.
//
// It lives beside the command rather than in it: the command parses its
// flags, this package founds and starts the federation (through
// node/nodetest/harness, as the tests and the benchmarks do) and tells
// what happens. A chapter that does not go as narrated is an error, so
// the demo is also a test of the whole, run by cmd/medfed's and this
// package's tests and by CI.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// demo holds one run of the story.
type demo struct {
	w       io.Writer
	err     error  // the first error writing to w; nothing more is written
	root    string // where the centres' data directories are
	scratch string // work space removed at the end, kept or not
	kept    bool
	cfgs    map[string]centre.Config // the federation's centres, from chapter 2 on
}

// federationID is the federation the demo's centres found.
const federationID = "medfed-demo"

// demoKeyNotice is the demo charter's key notice (see chapter 2).
const demoKeyNotice = 2 * time.Second

// ErrKeep is the error of a directory to keep the centres in that cannot
// be used: one that holds anything, or that cannot be made. Its kind is
// invalid, and the command takes it for a usage error.
var ErrKeep = node.E(node.Invalid, "demo --keep")

// Run tells the story to w. The centres live in a temporary directory it
// removes afterwards or, when keep is not "", in keep, which must be empty
// or absent (else ErrKeep), as keep/<centre-name>. Every chapter checks
// what it narrates: Run returns an error if the story did not happen as
// told.
func Run(ctx context.Context, w io.Writer, keep string) error {
	scratch, err := os.MkdirTemp("", "medfed-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	d := &demo{w: w, root: scratch, scratch: scratch}
	if keep != "" {
		if err := emptyOrAbsent(keep); err != nil {
			return fmt.Errorf("%w: %w", ErrKeep, err)
		}
		d.root, d.kept = keep, true
	}
	d.say("medfed demo: independent healthcare centres, each with its own tamper-evident")
	d.say("ledger, finding a patient's records across each other without learning who the")
	d.say("patient is. Every name below is synthetic; patients appear only as pseudonyms.")
	for _, chapter := range []func(context.Context) error{d.ledgerChapter, d.federationChapter, d.witnessChapter, d.pseudonymChapter, d.directoryChapter, d.consentChapter, d.queryChapter, d.apiChapter} {
		if err := chapter(ctx); err != nil {
			return err
		}
	}
	if d.kept {
		d.say("\nThe centres' data directories are in %s.", d.root)
	} else {
		d.say("\nThe demo's temporary directory has been removed.")
	}
	return d.err
}

func emptyOrAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// say narrates one line (or more), unless writing has failed before.
func (d *demo) say(format string, args ...any) {
	if d.err == nil {
		_, d.err = fmt.Fprintf(d.w, format+"\n", args...)
	}
}

func (d *demo) chapter(n int, title string) {
	d.say("\n== Chapter %d: %s ==\n", n, title)
}

// openCentre opens (creating) the named demo centre.
func (d *demo) openCentre(ctx context.Context, name string) (*centre.Centre, error) {
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID = name, federationID
	cfg.Data.Dir = filepath.Join(d.root, name)
	return centre.Open(ctx, cfg, nil)
}

func demoPatient(i int) ledger.Pseudonym {
	return ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "medfed demo patient %d", i)))
}

func short(p ledger.Pseudonym) string { return p.String()[:12] + "…" }

func (d *demo) ledgerChapter(ctx context.Context) error {
	d.chapter(1, "a centre's own tamper-evident ledger")
	a, err := d.openCentre(ctx, "centre-a")
	if err != nil {
		return err
	}
	defer a.Close()
	d.say("centre-a starts for the first time: it creates an Ed25519 identity, an empty")
	d.say("ledger (an RFC 6962 Merkle log in SQLite) and an encrypted record store.")

	visits := []struct {
		patient int
		class   string
		where   string
		payload string
	}{
		{1, "lab-result", "haematology", "Full blood count: Hb 13.2 g/dL, WCC 6.1"},
		{2, "imaging", "radiology", "Chest X-ray: no consolidation"},
		{1, "prescription", "outpatients", "Amoxicillin 500 mg three times daily, 5 days"},
		{3, "discharge-summary", "ward 7", "Admitted with chest pain; troponin negative"},
		{2, "lab-result", "biochemistry", "HbA1c 48 mmol/mol"},
		{1, "clinic-letter", "cardiology", "Follow-up in 6 weeks"},
	}
	d.say("\nA clinician records %d interactions with 3 patients. Each payload is encrypted", len(visits))
	d.say("under a key of its own and stays in the record store; the ledger gets only the")
	d.say("patient's pseudonym, the kind of data, where, by whom, and a keyed commitment")
	d.say("to the payload, never a name, a number or the payload itself.")
	var author ledger.StaffID
	copy(author[:], "demo-clinician-1")
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i, v := range visits {
		meta := ledger.Record{Occurred: start.Add(time.Duration(i) * 47 * time.Minute), DataClass: v.class, Author: author, Location: v.where}
		n, err := a.AddRecord(ctx, demoPatient(v.patient), meta, []byte(v.payload))
		if err != nil {
			return err
		}
		d.say("  entry %d  %-18s patient %s  at %s", n, v.class, short(demoPatient(v.patient)), v.where)
	}

	first, err := a.Ledger.Sign(ctx)
	if err != nil {
		return err
	}
	d.say("\ncentre-a signs a checkpoint of its ledger, a C2SP signed note:")
	d.say("%s", indent(string(first.Note)))

	const proven = 2
	pub := a.Ledger.PublicKey()
	seen, err := ledger.OpenCheckpoint(first.Note, a.Ledger.Origin(), pub)
	if err != nil {
		return err
	}
	e, err := a.Ledger.Entry(ctx, proven)
	if err != nil {
		return err
	}
	leaf, err := e.Encode()
	if err != nil {
		return err
	}
	proof, err := a.Ledger.ProveInclusion(ctx, proven, seen.Size)
	if err != nil {
		return err
	}
	if err := ledger.VerifyInclusion(seen.Checkpoint, proven, leaf, proof); err != nil {
		return err
	}
	d.say("Another centre, holding nothing but centre-a's public key, checks that entry %d", proven)
	d.say("is in that checkpoint: an inclusion proof of %d hashes. Verified.", len(proof))
	leaf[len(leaf)-1] ^= 1
	err = ledger.VerifyInclusion(seen.Checkpoint, proven, leaf, proof)
	if err == nil {
		return errors.New("an altered entry passed its inclusion proof")
	}
	d.say("The same entry with one bit changed in transit fails the same proof:\n  %v", err)

	payload, err := a.Payload(ctx, 1)
	if err != nil {
		return err
	}
	d.say("\nReading record 1 back from the store gives %q,", payload)
	d.say("which matches the commitment on the ledger.")
	erased, err := a.Ledger.Entry(ctx, 1)
	if err != nil {
		return err
	}
	erasure, err := a.Erase(ctx, 1)
	if err != nil {
		return err
	}
	d.say("Patient %s asks for it to be erased. Its payload and the", short(erased.Subject))
	d.say("key that encrypted it are destroyed (crypto-shredding) and erasure entry %d", erasure)
	d.say("is appended. Reading record 1 now:")
	_, err = a.Payload(ctx, 1)
	if !errors.Is(err, centre.ErrErased) {
		return fmt.Errorf("reading an erased record gave %v", err)
	}
	d.say("  %v", err)
	second, err := a.Ledger.Sign(ctx)
	if err != nil {
		return err
	}
	cproof, err := a.Ledger.ProveConsistency(ctx, first.Size, second.Size)
	if err != nil {
		return err
	}
	if err := ledger.VerifyConsistency(first.Checkpoint, second.Checkpoint, cproof); err != nil {
		return err
	}
	d.say("History is intact: the new checkpoint (size %d) provably extends the first", second.Size)
	d.say("(size %d), a consistency proof of %d hashes.", first.Size, len(cproof))

	const victim = 3
	target, err := a.Ledger.Entry(ctx, victim)
	if err != nil {
		return err
	}
	enc, err := target.Encode()
	if err != nil {
		return err
	}
	dir := filepath.Join(d.root, "centre-a")
	if err := a.Close(); err != nil {
		return err
	}
	tampered, err := d.tamperedCopy(dir, enc)
	if err != nil {
		return err
	}
	d.say("\nSomeone with access to the disk edits a copy of the ledger file, changing one")
	d.say("byte of entry %d. medfed ledger verify recomputes every hash and signature:", victim)
	_, err = centre.Verify(ctx, tampered)
	var te *ledger.TamperError
	if !errors.As(err, &te) {
		return fmt.Errorf("verify missed the tampering: %v", err)
	}
	d.say("  the copy:      TAMPERED, %v", te)
	rep, err := centre.Verify(ctx, dir)
	if err != nil {
		return err
	}
	d.say("  the original:  ok, %d entries, %d signed checkpoints, root %s", rep.Size, rep.Checkpoints, base64.StdEncoding.EncodeToString(rep.Root[:]))
	return nil
}

// tamperedCopy copies a closed centre's key and ledger to the scratch
// directory and changes the last byte of the stored entry enc, in the file
// itself, as an editor of the file would.
func (d *demo) tamperedCopy(dir string, enc []byte) (string, error) {
	dst := filepath.Join(d.scratch, "centre-a-tampered")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	for _, name := range []string{centre.KeyFile, centre.LedgerFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		if name == centre.LedgerFile {
			at := bytes.Index(b, enc)
			if at < 0 {
				return "", errors.New("the entry to alter is not in the ledger file")
			}
			b[at+len(enc)-1] ^= 0x01
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ")
}

// waitUntil polls ok for up to ten seconds, the demo's patience for what
// a few centres on one machine do at once.
func waitUntil(ctx context.Context, what string, ok func() bool) error {
	return harness.WaitFor(ctx, 10*time.Second, what, ok)
}

// now is the time as consent documents carry it: UTC, to the second.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
